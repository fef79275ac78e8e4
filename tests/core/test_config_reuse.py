"""One UniPTConfig, several backbones: the config is what the user asked for and is never changed, so it
builds on a second backbone of another width or depth exactly as on the first (issue 12, item 3)."""

from __future__ import annotations

import copy

import torch
from transformers import BertConfig, BertModel

import unipt


def bert(width: int, layers: int) -> BertModel:
    torch.manual_seed(0)
    return BertModel(BertConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=2,
                                intermediate_size=2 * width, vocab_size=50, max_position_embeddings=16))


def batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[3, 7, 9, 4], [5, 2, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_one_config_on_two_backbones_of_other_widths():
    config = unipt.UniPTConfig(preset="auto", reduction=4)
    asked = copy.deepcopy(config)
    wide = unipt.get_unipt_model(bert(32, 2), config)
    narrow = unipt.get_unipt_model(bert(16, 2), config)  # unipt 0.1: "in_widths=[32, 32, 32] ... drop it"
    assert config == asked  # nothing resolved was written into it
    assert wide.resolved.in_widths == [32] * 3 and narrow.resolved.in_widths == [16] * 3
    assert wide.dims.side_width == 8 and narrow.dims.side_width == 4
    assert wide(**batch()).last_hidden_state.shape == (2, 4, 32)
    assert narrow(**batch()).last_hidden_state.shape == (2, 4, 16)


def test_glob_taps_match_each_backbone_anew(tmp_path):
    config = unipt.UniPTConfig(taps=["encoder.layer.*"])
    two = unipt.get_unipt_model(bert(16, 2), config)
    four = unipt.get_unipt_model(bert(16, 4), config)  # unipt 0.1 silently reused layers 0-1 here
    assert config.taps == ["encoder.layer.*"]
    assert two.resolved.taps == ["encoder.layer.0", "encoder.layer.1"]
    assert four.resolved.taps == [f"encoder.layer.{i}" for i in range(4)]
    assert len(four.resolved.in_widths) == 4 and len(four.side.branch.layers) == 3
    assert four(**batch()).last_hidden_state.shape == (2, 4, 16)

    four.save_pretrained(tmp_path)  # the glob is saved as asked, the four names beside it
    again = unipt.UniPTModel.from_pretrained(four.backbone, tmp_path)
    assert again.config == config and again.resolved == four.resolved
