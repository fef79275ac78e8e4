"""The model API: a zero-sample batch, half-precision backbones, and settings that would silently misbehave
(``reduction <= 0``, ``taps=[]``) are handled when they happen or refused when the config is made."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

import unipt
from unipt import UniPTConfig


def tiny_bert(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                vocab_size=64), add_pooling_layer=False)


def batch(size: int = 3) -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 64, (size, 7), generator=torch.Generator().manual_seed(2))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_a_batch_of_zero_samples_is_refused_before_the_backbone_runs() -> None:
    backbone = tiny_bert()
    model = unipt.get_unipt_model(backbone)
    calls = []
    backbone.register_forward_pre_hook(lambda *_: calls.append(1))
    with pytest.raises(ValueError, match=r"got a batch of zero samples \(input_ids has shape \(0, 7\)\)"):
        model(**{k: v[:0] for k, v in batch().items()})
    assert calls == []


@pytest.mark.parametrize(("dtype", "kernel"), [(torch.bfloat16, "fused"), (torch.float16, "reference")])
def test_a_half_precision_backbone_feeds_a_side_network_in_its_own_dtype(dtype: torch.dtype, kernel: str) -> None:
    reference = unipt.get_unipt_model(tiny_bert(), UniPTConfig(kernel=kernel))
    half = unipt.get_unipt_model(tiny_bert().to(dtype), UniPTConfig(kernel=kernel))
    half.side.load_state_dict(reference.side.state_dict())
    assert all(p.dtype == torch.float32 for p in half.side.parameters())
    out = half(**batch())
    assert out.pooled.dtype == torch.float32 and torch.isfinite(out.last_hidden_state).all()
    expected = reference(**batch()).last_hidden_state
    assert torch.allclose(out.last_hidden_state, expected, atol=0.1, rtol=0.05)  # half-precision taps
    out.pooled.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in half.side.parameters() if p.requires_grad)


def test_a_side_network_saved_on_fp32_loads_onto_the_same_backbone_in_bf16(tmp_path: Path) -> None:
    fp32 = unipt.get_unipt_model(tiny_bert())
    fp32.save_pretrained(tmp_path / "side")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "trained on other weights" warning either
        loaded = unipt.UniPTModel.from_pretrained(tiny_bert().to(torch.bfloat16), tmp_path / "side")
    for key, value in fp32.side.state_dict().items():
        assert torch.equal(loaded.side.state_dict()[key], value), key
    with pytest.raises(ValueError, match="trained on a different backbone"):  # another architecture still is not
        unipt.UniPTModel.from_pretrained(BertModel(BertConfig(hidden_size=32, num_hidden_layers=3,
                                                              num_attention_heads=2, intermediate_size=64,
                                                              vocab_size=64), add_pooling_layer=False),
                                         tmp_path / "side")


@pytest.mark.parametrize("reduction", [0, -2, 0.0])
def test_reduction_must_be_positive(reduction: float) -> None:
    with pytest.raises(ValueError, match=rf"reduction={reduction!r} must be > 0: side width = backbone width / "):
        UniPTConfig(reduction=reduction)


@pytest.mark.parametrize("backbone", [tiny_bert, lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())],
                         ids=["hugging-face", "sequential"])
def test_an_empty_tap_list_is_refused(backbone) -> None:
    with pytest.raises(ValueError, match=r"taps=\[\] selects no layer; list module names or globs"):
        unipt.get_unipt_model(backbone(), UniPTConfig(taps=[]))
