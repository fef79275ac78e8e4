"""MDETR's forward (masks, taps) and UniPT's ``mdetr`` preset on it, with tiny random weights."""

from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

import unipt
from unipt.models.mdetr import MDETR, MDETRConfig, ResNetBodyConfig, TextEncoderConfig, load_mdetr
from unipt.models.mdetr.image import FrozenBatchNorm2d

TEXT = TextEncoderConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=24)
BODY = ResNetBodyConfig(depths=(1, 1, 1, 1), widths=(4, 4, 8, 8), stem=8)


def tiny(layers: int = 2, width: int = 32, **extra: object) -> MDETR:
    torch.manual_seed(0)
    config = MDETRConfig(hidden_dim=width, nheads=4, enc_layers=layers, dec_layers=layers, dim_feedforward=32,
                         num_queries=4, contrastive_hdim=8, body_channels=32, resnet=BODY, text=TEXT, **extra)
    return MDETR(config).eval()


def inputs() -> dict[str, torch.Tensor]:
    """Two samples, the same 64x64 image; captions of 6 and 4 tokens (the second one padded)."""
    torch.manual_seed(1)
    image = torch.randn(1, 3, 64, 64).expand(2, -1, -1, -1)
    ids = torch.tensor([[0, 5, 6, 7, 8, 2], [0, 9, 10, 2, 1, 1]])
    return {"pixel_values": image, "pixel_mask": torch.ones(2, 64, 64, dtype=torch.long), "input_ids": ids,
            "attention_mask": (ids != 1).long()}


def alone(batch: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """Sample ``i`` on its own, its caption cut to its real length."""
    length = int(batch["attention_mask"][i].sum())
    out = {k: v[i:i + 1] for k, v in batch.items()}
    return {**out, "input_ids": out["input_ids"][:, :length], "attention_mask": out["attention_mask"][:, :length]}


@torch.no_grad()
def test_forward_shapes_and_padding_invariance() -> None:
    model, batch = tiny(), inputs()
    out = model(**batch)
    assert out.pred_logits.shape == (2, 4, 256) and out.pred_boxes.shape == (2, 4, 4)
    assert out.heads.proj_queries.shape == (2, 2, 4, 8) and out.heads.proj_tokens.shape == (2, 6, 8)
    assert len(out.encoder_hidden_states) == 3 and len(out.decoder_hidden_states) == 3
    assert out.encoder_hidden_states[0].shape == (2, 4 + 6, 32)  # 2x2 image cells + 6 text tokens
    assert torch.equal(out.decoder_hidden_states[0], torch.zeros(2, 4, 32))
    assert out.encoder_attention_mask[1].tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert out.head_inputs["text_memory"].shape == (2, 6, 32)
    # Padding is masked everywhere: the padded sample predicts what it predicts alone.
    single = model(**alone(batch, 1))
    torch.testing.assert_close(out.pred_logits[1], single.pred_logits[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.pred_boxes[1], single.pred_boxes[0], atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_image_padding_is_masked_in_the_transformer() -> None:
    """A padded image region gets mask 0 on the feature grid and no sine position mass."""
    model = tiny()
    batch = inputs()
    batch["pixel_mask"][0, :, 32:] = 0
    features, mask, pos = model.backbone(batch["pixel_values"], batch["pixel_mask"])
    assert mask[0].tolist() == [[True, False], [True, False]] and mask[1].all()
    assert pos.shape == (2, 32, 2, 2)


def test_unipt_mdetr_preset_on_mdetr() -> None:
    """UniPT's ``mdetr`` preset on a 6 + 6-layer, width-256 MDETR: the paper's 481,666-parameter side network,
    cross-stream taps (7 encoder states under the joint mask, 7 decoder states), the backbone frozen."""
    model = tiny(layers=6, width=256)
    batch = inputs()
    adapted = unipt.get_unipt_model(model, unipt.UniPTConfig(preset="mdetr", tap_source="hidden_states"), batch)
    cfg, resolved = adapted.config, adapted.resolved
    assert resolved.input_kind == "cross_stream" and resolved.in_widths == [256] * 7
    assert resolved.decoder_widths == [256] * 7
    assert adapted.dims.side_width == 128 and cfg.target_layers == [1, 3, 5]
    assert sum(p.numel() for p in adapted.side.parameters()) == 481_666
    assert adapted.trainable_parameters()[0] == 481_666

    taps = adapted.tap(**batch)
    assert torch.equal(taps.mask, model(**batch).encoder_attention_mask)
    out = adapted(**batch)
    assert out.last_hidden_state.shape == (2, 4, 256) and out.aux_hidden_states.shape == (3, 2, 4, 256)
    assert out.head_inputs["text_mask"].tolist() == batch["attention_mask"].tolist()
    out.last_hidden_state.sum().backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in adapted.side.parameters() if p.requires_grad)
    # The joint mask reaches the side network: sample 1's adapted queries do not see the caption padding.
    with torch.no_grad():
        single = adapted(**alone(batch, 1))
        torch.testing.assert_close(adapted(**batch).last_hidden_state[1], single.last_hidden_state[0],
                                   atol=1e-4, rtol=1e-4)


class EfficientNetLike(nn.Module):
    """A body in timm's EfficientNet key layout (``conv_stem``, ``bn1``, ``blocks.<i>.<j>``): any module works."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, stride=4, padding=1, bias=False)
        self.bn1 = FrozenBatchNorm2d(8)
        self.blocks = nn.Sequential(OrderedDict([("0", nn.Sequential(nn.Conv2d(8, 12, 3, stride=8, padding=1)))]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = torch.relu(self.bn1(self.conv_stem(x)))
        return [stem, self.blocks(stem)]


def test_pluggable_body_loads_an_efficientnet_layout(tmp_path: Path) -> None:
    config = MDETRConfig(hidden_dim=32, nheads=4, enc_layers=1, dec_layers=1, dim_feedforward=32, num_queries=4,
                         contrastive_hdim=8, image_body="custom", body_channels=12, text=TEXT)
    source = MDETR(config, image_body=EfficientNetLike())
    state = source.state_dict()
    assert "backbone.0.body.blocks.0.0.weight" in state and state["input_proj.weight"].shape == (32, 12, 1, 1)
    args = argparse.Namespace(backbone="timm_tf_efficientnet_b3_ns", nheads=4)
    torch.save({"model": state, "args": args}, tmp_path / "eb3.pth")
    loaded = load_mdetr(tmp_path / "eb3.pth", image_body=EfficientNetLike())
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in state.items())
    assert loaded.config.image_body == "timm:tf_efficientnet_b3_ns" and loaded.config.body_channels == 12
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"unipt\[vision\]"):
            load_mdetr(tmp_path / "eb3.pth")  # the body by name needs timm


def test_freezing_batch_norms_keeps_statistics_and_fused_activations() -> None:
    """timm bodies: every BatchNorm (also a norm + activation layer like timm's BatchNormAct2d) becomes a
    frozen copy that computes what the eval-mode original did, in train mode too, with the same keys."""

    class NormAct(nn.BatchNorm2d):
        def __init__(self, channels: int) -> None:
            super().__init__(channels)
            self.drop, self.act = nn.Identity(), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.drop(super().forward(x)))

    from unipt.models.mdetr.image import FrozenBatchNormAct2d, freeze_batch_norms

    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 1), NormAct(4), nn.Sequential(nn.BatchNorm2d(4)))
    for norm in (body[1], body[2][0]):
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.normal_()
    x = torch.randn(2, 3, 5, 5)
    expected = body.eval()(x)
    keys = {k for k in body.state_dict() if not k.endswith("num_batches_tracked")}
    freeze_batch_norms(body)
    assert isinstance(body[1], FrozenBatchNormAct2d) and isinstance(body[2][0], FrozenBatchNorm2d)
    assert set(body.state_dict()) == keys
    torch.testing.assert_close(body.train()(x), expected)
    assert bool((body(x) >= 0).any()) and bool((body[1](body[0](x)) >= 0).all())  # the ReLU survived
