"""CLIP-ViL as its own model: released checkpoints load key for key, outputs match the released maths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unipt.builder import build_side_network
from unipt.config import UniPTConfig
from unipt.models.clipvil import (
    CLIPViLBackbone,
    CLIPViLConfig,
    CLIPViLForQuestionAnswering,
    build_backbone,
    side_key_table,
    split_checkpoint,
)
from unipt.models.clipvil.preprocess import pad_to_canvas, vqa_style_size
from unipt.models.clipvil.visual import FeatureFiles, stack_features
from unipt.registry import build_method

from .released import (
    SIZES,
    TinyModifiedResNet,
    install_open_clip_stand_in,
    random_state,
    released_shapes,
    released_side_forward,
    save,
    with_clip,
)

CONFIG = {"num_heads": 2}


def inputs(batch: int = 2, grid: tuple[int, int] = (3, 4)) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    ids = torch.tensor([[101, 2054, 3609, 102, 0, 0], [101, 2003, 2009, 2417, 1029, 102]])[:batch]
    feats = torch.randn(batch, SIZES["feat"], *grid)
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "visual_feats": feats}


# ------------------------------------------------------------------------------------------- loading
def test_pretraining_checkpoint_loads_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Epoch11_LXRT.pth``'s layout (DDP ``module.`` prefixes, CLIP inside the encoder, pre-training heads):
    every encoder and CLIP-image tensor lands in place; the rest is set aside with a reason, nothing unknown."""
    calls = install_open_clip_stand_in(monkeypatch)
    clip = TinyModifiedResNet()
    state = with_clip(random_state(released_shapes("pretrained")), clip)
    path = save(state, tmp_path / "Epoch11_LXRT.pth", ddp=True)

    backbone, parts = build_backbone(str(path), visual="open_clip:RN50x4", config=CONFIG)
    assert calls == [("RN50x4", None)]  # architecture only: the weights come from the checkpoint
    assert parts is not None and parts.layout == "pretrained" and not parts.side and not parts.head
    assert set(parts.pretrained_answer_head) == {"0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"}
    ours = backbone.state_dict()
    for key, value in state.items():
        if key.startswith("bert."):
            name = key[len("bert."):]
            if name.startswith("encoder.visual_model.") and not name.startswith("encoder.visual_model.visual."):
                assert parts.ignored[key].startswith("CLIP text-tower leftover")
                continue
            assert torch.equal(ours[name], value), name
    assert {k for k, why in parts.ignored.items() if "pre-training head" in why} == {
        k for k in state if k.startswith(("cls.", "obj_predict_head."))}
    assert backbone.config == CLIPViLConfig(vocab_size=30522, hidden_size=32, num_layers=2, num_heads=2,
                                            intermediate_size=64, max_position_embeddings=40,
                                            visual_feat_dim=SIZES["feat"], grid_positions=SIZES["pos_num"])
    clip.eval()
    pixels = torch.randn(2, 3, 64, 96)
    expected = clip.layer4(clip.layer3(clip.layer2(clip.layer1(clip.stem(pixels)))))
    torch.testing.assert_close(backbone.encoder.visual_model.grid(pixels), expected)
    assert not any(p.requires_grad for p in backbone.parameters())


def test_finetuned_unipt_checkpoint_round_trips_and_matches_released_maths(tmp_path: Path) -> None:
    """A released UniPT VQA run (``lxrt_encoder.model.bert.*`` with ``encoder.side_*``, ``logit_fc.*``) loads
    with no missing or unexpected key, gives the logits of the released side forward + frozen pooler +
    logit_fc, and writes the identical state dict back."""
    state = random_state(released_shapes("finetuned", side=True), seed=1)
    path = save(state, tmp_path / "BEST.pth")
    model, report = CLIPViLForQuestionAnswering.from_released(str(path), config=CONFIG)
    assert report.layout == "finetuned" and report.side == "loaded" and report.head.startswith("fine-tuned")
    written = model.released_state_dict()
    assert set(written) == set(state)
    assert all(torch.equal(written[k], state[k]) for k in state)

    model.eval()
    batch = inputs()
    out = model.unipt.backbone(**batch)
    prefix = "lxrt_encoder.model.bert.encoder."
    side = released_side_forward(state, list(out.hidden_states), out.attention_mask, prefix)
    pooled = torch.nn.functional.linear(side[:, 0], state["lxrt_encoder.model.bert.pooler.dense.weight"],
                                        state["lxrt_encoder.model.bert.pooler.dense.bias"])
    logits = model.logit_fc(pooled)
    torch.testing.assert_close(model(**batch), logits, atol=1e-5, rtol=1e-4)


def test_wrong_files_are_refused_naming_the_keys(tmp_path: Path) -> None:
    state = random_state(released_shapes("finetuned", side=True))
    extra = {**state, "lxrt_encoder.model.bert.encoder.layer.0.output.adapter.down.weight": torch.zeros(2, 2)}
    with pytest.raises(ValueError, match=r"unexpected 1: encoder\.layer\.0\.output\.adapter\.down\.weight"):
        CLIPViLForQuestionAnswering.from_released(str(save(extra, tmp_path / "a.pth")), config=CONFIG)
    missing = {k: v for k, v in state.items() if "layer.1.intermediate" not in k}
    with pytest.raises(ValueError, match=r"missing 2: encoder\.layer\.1\.intermediate\.dense\.bias"):
        CLIPViLForQuestionAnswering.from_released(str(save(missing, tmp_path / "b.pth")), config=CONFIG)
    shaped = {**state, "lxrt_encoder.model.bert.pooler.dense.weight": torch.zeros(32, 31)}
    with pytest.raises(ValueError, match=r"wrong shapes.*pooler\.dense\.weight \(32, 31\) vs \(32, 32\)"):
        CLIPViLForQuestionAnswering.from_released(str(save(shaped, tmp_path / "c.pth")), config=CONFIG)
    stray = {**state, "classifier.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"belong to no part of CLIP-ViL: classifier\.weight"):
        split_checkpoint(stray)
    plain_bert = {k.replace("lxrt_encoder.model.bert.", ""): v for k, v in state.items()}
    with pytest.raises(ValueError, match="no CLIP-ViL encoder weights found"):
        split_checkpoint(plain_bert)
    with pytest.raises(FileNotFoundError, match="not found"):
        CLIPViLForQuestionAnswering.from_released(str(tmp_path / "missing.pth"))


def test_pretraining_checkpoint_needs_answers_and_does_surgery(tmp_path: Path) -> None:
    state = random_state(released_shapes("pretrained"), seed=2)
    path = save(state, tmp_path / "Epoch11_LXRT.pth")
    with pytest.raises(ValueError, match="answers="):
        CLIPViLForQuestionAnswering.from_released(str(path), config=CONFIG)
    table = tmp_path / "all_ans.json"
    pretrained = ["yes", "no", "man", "2", "red", "gray", "dog"]
    table.write_text(__import__("json").dumps([{"ans": a, "dsets": ["vqa"]} for a in pretrained]))
    answers = ["red", "a man", "two", "cat", "grey"]
    model, report = CLIPViLForQuestionAnswering.from_released(str(path), answers=answers, answer_table=str(table),
                                                              config=CONFIG)
    assert report.surgery is not None and report.surgery.zeroed == ["cat"]
    rows = [pretrained.index(a) for a in ("red", "man", "2")] + [None, pretrained.index("gray")]
    last = model.logit_fc[3]
    for row, source in enumerate(rows):
        if source is None:
            assert not last.weight[row].any() and last.bias[row] == 0
        else:
            assert torch.equal(last.weight[row], state["answer_head.logit_fc.3.weight"][source])
    assert torch.equal(model.logit_fc[0].weight, state["answer_head.logit_fc.0.weight"])
    assert report.side == "new (BERT init)"


# ------------------------------------------------------------------------------------------- the maths
def test_encoder_layers_are_bert_layers() -> None:
    """On text alone (no visual token) the encoder's hidden states are Hugging Face BERT's."""
    from transformers import BertConfig, BertModel

    backbone = CLIPViLBackbone(CLIPViLConfig(vocab_size=200, hidden_size=32, num_layers=2, num_heads=2,
                                             intermediate_size=64, visual_feat_dim=8, grid_positions=0)).eval()
    bert = BertModel(BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=512), add_pooling_layer=False).eval()
    own = {k: v for k, v in backbone.state_dict().items() if k.startswith(("embeddings.", "encoder.layer."))}
    missing, unexpected = bert.load_state_dict(own, strict=False)
    assert not unexpected and not [k for k in missing if "position_ids" not in k]
    ids = torch.tensor([[101, 7, 8, 9, 102], [101, 5, 102, 0, 0]])
    mask = (ids != 0).long()
    ours = backbone(ids, mask, visual_feats=torch.zeros(2, 0, 8)).hidden_states
    theirs = bert(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a[mask.bool()], b[mask.bool()], atol=1e-5, rtol=1e-4)


def test_grid_positions_rows_use_x_and_masks_cover_padding() -> None:
    backbone = CLIPViLBackbone(CLIPViLConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2,
                                             intermediate_size=32, visual_feat_dim=4, grid_positions=5)).eval()
    grid = torch.zeros(1, 4, 2, 3)
    tokens = backbone.visual_tokens(None, grid)
    table = backbone.encoder.visual_pos
    x, y = table.x_position_embedding.weight, table.y_position_embedding.weight
    torch.testing.assert_close(tokens[0, 1 * 3 + 2], x[1] + y[2])  # cell (row 1, col 2), row-major
    feats, mask = stack_features([torch.ones(4, 2, 3), torch.ones(4, 1, 2)])
    assert feats.shape == (2, 4, 2, 3) and mask.tolist() == [[1] * 6, [1, 1, 0, 0, 0, 0]]
    ids = torch.tensor([[1, 2, 0], [1, 2, 3]])
    out = backbone(ids, (ids != 0).long(), visual_feats=feats, visual_mask=mask)
    assert out.attention_mask.tolist() == [[1, 1, 0] + [1] * 6, [1, 1, 1, 1, 1, 0, 0, 0, 0]]
    assert len(out.hidden_states) == 2 and out.text_length == 3
    with pytest.raises(ValueError, match="larger than the 5x5 position tables"):
        backbone.visual_tokens(None, torch.zeros(1, 4, 6, 2))


def test_unipt_reads_joint_states_and_side_count_at_paper_widths() -> None:
    """The side network is the ``clipvil`` preset's (4,736,641 parameters at CLIP-ViL's widths), the frozen
    pooler reads its [CLS], and the backbone gets no gradient."""
    backbone = CLIPViLBackbone(CLIPViLConfig(vocab_size=30522, hidden_size=32, num_layers=2, num_heads=2,
                                             intermediate_size=64, visual_feat_dim=SIZES["feat"], grid_positions=6))
    model = build_method("unipt", backbone, preset="clipvil")
    assert model.resolved.in_widths == [32] * 3 and model.dims.side_width == 16
    paper = UniPTConfig(**{**model.config.to_dict(), "in_widths": [768] * 13})
    assert sum(p.numel() for p in build_side_network(paper).parameters()) == 4_736_641
    out = model(**inputs())
    assert out.last_hidden_state.shape == (2, 6 + 12, 32)
    torch.testing.assert_close(out.pooled, backbone.pooler(out.last_hidden_state))
    out.pooled.sum().backward()
    assert all(p.grad is None for p in backbone.parameters())
    assert all(p.grad is not None for p in model.side.parameters())


def test_hf_clip_vision_tokens(tmp_path: Path) -> None:
    """``clip-vision:<folder>``: every last-layer token after post_layernorm, as the released ViT variant."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                                             num_attention_heads=2, image_size=32, patch_size=16)).eval()
    tower.save_pretrained(tmp_path / "clip")
    backbone, _ = build_backbone("random", visual=f"clip-vision:{tmp_path / 'clip'}",
                                 config=dict(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2,
                                             intermediate_size=32, visual_feat_dim=24, grid_positions=0))
    pixels = torch.randn(2, 3, 32, 32)
    tokens = backbone.encoder.visual_model.grid(pixels)
    out = tower(pixel_values=pixels)
    post = getattr(tower, "vision_model", tower).post_layernorm  # transformers 5 flattens the tower
    torch.testing.assert_close(tokens, post(out.last_hidden_state))
    assert tokens.shape == (2, 5, 24)
    with pytest.raises(ValueError, match="visual encoder gives 24-channel"):
        build_backbone("random", visual=f"clip-vision:{tmp_path / 'clip'}",
                       config=dict(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                                   visual_feat_dim=8))


# ------------------------------------------------------------------------------------------- inputs
def test_vqa_style_resize_and_canvas() -> None:
    assert vqa_style_size(640, 480, 384, 640) == (512, 384)  # short side 384
    assert vqa_style_size(1000, 200, 384, 640) == (640, 128)  # long side capped at 640
    assert vqa_style_size(300, 600, 384, 640) == (320, 640)
    canvas = pad_to_canvas(Image.new("RGB", (101, 384), (255, 255, 255)), 384, 640)
    assert canvas.size == (384, 640)
    pixels = np.asarray(canvas)[:, :, 0]
    row, column = pixels[300], pixels[:, 200]
    assert row[:142].max() == 0 and row[142:243].min() == 255 and row[243:].max() == 0  # odd pixel left
    assert column[:128].max() == 0 and column[128:512].min() == 255 and column[512:].max() == 0


def test_feature_files(tmp_path: Path) -> None:
    np.save(tmp_path / "n123.npy", np.ones((4, 2, 2), dtype=np.float32))
    from safetensors.torch import save_file

    save_file({"grid": torch.zeros(4, 3, 3)}, str(tmp_path / "n124.safetensors"))
    files = FeatureFiles(str(tmp_path))
    assert files.load("n123").shape == (4, 2, 2) and files.load("n124").shape == (4, 3, 3)
    with pytest.raises(FileNotFoundError, match=r"n125\.safetensors or .*n125\.npy"):
        files.load("n125")


def test_side_key_table_covers_the_released_side() -> None:
    table = side_key_table(12)
    assert table["encoder.side_downsamples_l.11.0."] == "branch.guide.linear."
    assert table["encoder.side_downsamples_l.0.1."] == "branch.layers.1.norm."
    assert table["encoder.side_projection_l.3."] == "branch.fusion.norm."
    assert table["encoder.side_final_upsample_l.0."] == "up.linear."
    assert len(table) == 2 * (1 + 12) + 3 + 2  # Linear + LayerNorm per tap; fusion fc1/fc2/norm; gate; U
