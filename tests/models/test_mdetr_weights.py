"""Released MDETR checkpoints load through unipt's loader: every key, no missing / unexpected ones, and a
wrong file is refused with an error that names the keys."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from unipt.models.mdetr import CheckpointMismatchError, load_mdetr, save_mdetr
from unipt.models.mdetr.tower import load_mdetr_backbone
from unipt.models.mdetr.weights import BENIGN_KEYS, config_from_state_dict, read_checkpoint

from .mdetr_release import TinySizes, random_state, released_shapes, write_release, write_tokenizer


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release(tmp_path_factory.mktemp("mdetr_release"))


def test_released_layout_loads_every_tensor(release: Path) -> None:
    model = load_mdetr(release)
    with torch.serialization.safe_globals([argparse.Namespace]):
        raw = torch.load(release, weights_only=True, map_location="cpu")
    saved = raw["model_ema"]  # the EMA weights are preferred, as the released --load does
    own = model.state_dict()
    # Exactly the released keys (only the RoBERTa position_ids buffer, recomputed by transformers, is dropped).
    assert set(own) == {k for k in saved if not BENIGN_KEYS.search(k)}
    assert [k for k in saved if BENIGN_KEYS.search(k)] == ["transformer.text_encoder.embeddings.position_ids"]
    for key, value in own.items():
        assert torch.equal(value, saved[key]), key
    plain = load_mdetr(release, prefer_ema=False).state_dict()
    assert all(torch.equal(plain[k], raw["model"][k]) for k in plain)
    assert not torch.equal(plain["class_embed.weight"], own["class_embed.weight"])


def test_sizes_are_read_from_the_tensors_and_args(release: Path) -> None:
    state, settings = read_checkpoint(release)
    cfg = config_from_state_dict(state, settings)
    sizes = TinySizes()
    assert (cfg.hidden_dim, cfg.nheads, cfg.enc_layers, cfg.dec_layers) == (sizes.hidden, sizes.heads, 2, 2)
    assert (cfg.dim_feedforward, cfg.num_queries, cfg.num_classes) == (sizes.ffn, sizes.queries, 255)
    assert cfg.resnet.depths == sizes.depths and cfg.resnet.widths == sizes.widths and cfg.resnet.stem == sizes.stem
    assert cfg.body_channels == 4 * sizes.widths[-1] and cfg.contrastive_hdim == sizes.align
    assert cfg.contrastive_align and not cfg.contrastive_loss
    assert (cfg.text.hidden_size, cfg.text.num_hidden_layers, cfg.text.intermediate_size) == (24, 2, 48)


def test_default_config_is_the_released_resnet101_model() -> None:
    """MDETRConfig() is MDETR R101 + RoBERTa-base: built on the meta device (no memory), its keys and shapes
    equal the independent writer's full-size released layout, and the sizes read back from those shapes
    give the default config again."""
    from unipt.models.mdetr import MDETR, MDETRConfig

    full = TinySizes(hidden=256, heads=8, enc_layers=6, dec_layers=6, ffn=2048, queries=100, align=64, stem=64,
                     widths=(64, 128, 256, 512), depths=(3, 4, 23, 3), text_hidden=768, text_layers=12,
                     text_heads=12, text_ffn=3072, max_positions=514)
    shapes = {k: v for k, v in released_shapes(full, vocab=50265).items() if not BENIGN_KEYS.search(k)}
    with torch.device("meta"):
        model = MDETR(MDETRConfig())
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    meta = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    assert config_from_state_dict(meta, {"nheads": 8}) == MDETRConfig()
    params = sum(p.numel() for p in model.parameters())
    assert 185_000_000 < params < 186_000_000, params  # ResNet-101 42.5M + RoBERTa-base 124.6M + the rest


def test_wrong_file_names_the_keys(tmp_path: Path) -> None:
    vocab = write_tokenizer(tmp_path)
    sizes = TinySizes(extra={"qa_embed.weight": (6, 32)})
    state = random_state(released_shapes(sizes, vocab))
    del state["class_embed.bias"]
    state["bbox_embed.layers.2.weight"] = torch.zeros(5, 32)
    torch.save({"model": state, "args": argparse.Namespace(nheads=4)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError) as err:
        load_mdetr(tmp_path / "bad.pth")
    message = str(err.value)
    assert "class_embed.bias" in message and "qa_embed.weight" in message
    assert "bbox_embed.layers.2.weight: file (5, 32) vs model (4, 32)" in message
    assert err.value.missing == ["class_embed.bias"] and err.value.unexpected == ["qa_embed.weight"]


def test_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    torch.save({"weights": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds no MDETR state dict"):
        load_mdetr(tmp_path / "list.pth")
    torch.save({"model": {"a": torch.ones(1)}, "args": Path("runs")}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="never unpickles arbitrary objects"):
        load_mdetr(tmp_path / "pickled.pth")
    with pytest.raises(FileNotFoundError, match="exactly one checkpoint"):
        load_mdetr(tmp_path)  # two candidate files


def test_safetensors_copy_round_trips(release: Path, tmp_path: Path) -> None:
    model = load_mdetr(release)
    copy = load_mdetr(save_mdetr(model, tmp_path / "mdetr.safetensors"))
    assert copy.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(value, copy.state_dict()[key]), key


def test_backbone_name_loads_model_and_tokenizer(release: Path) -> None:
    backbone = load_mdetr_backbone(str(release.parent))
    assert backbone.name.startswith("mdetr:") and backbone.model.config.num_queries == TinySizes().queries
    assert backbone.preprocess.tokenizer("the red square")["input_ids"][0] == 0  # RoBERTa's <s>
