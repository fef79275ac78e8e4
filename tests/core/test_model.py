"""UniPTModel: no autograd graph through the backbone, PEFT-style save/load, clear errors."""

import json

import pytest
import torch
from torch.autograd.graph import saved_tensors_hooks

import unipt
from unipt.builder import build_side_network


def count_saved(fn):
    """Run ``fn`` and return (its result, number of tensors autograd saved for backward)."""
    saved = []
    with saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        result = fn()
    return result, len(saved)


def test_backbone_gets_no_gradient_and_saves_nothing(tiny_bert, tiny_batch):
    model = unipt.get_unipt_model(tiny_bert).train()
    out = model(**tiny_batch)
    out.pooled.pow(2).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in tiny_bert.parameters())
    assert all(p.grad is not None for p in model.side.parameters() if p.requires_grad)

    taps, saved_in_backbone = count_saved(lambda: model.tap(**tiny_batch))
    assert saved_in_backbone == 0
    assert all(not h.requires_grad and h.grad_fn is None for h in taps.hidden)
    _, saved_by_side = count_saved(lambda: model.adapt(taps))
    _, saved_total = count_saved(lambda: model(**tiny_batch))
    assert saved_total == saved_by_side > 0


def test_the_meter_would_see_backbone_activations():
    """Control: the same counting sees the backbone's activations when it does train."""
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                                intermediate_size=64, vocab_size=100))
    ids = torch.randint(1, 100, (2, 5))
    _, saved = count_saved(lambda: bert(input_ids=ids))
    assert saved > 20


def test_backbone_stays_in_eval_mode_unless_dropout_is_kept(tiny_bert):
    model = unipt.get_unipt_model(tiny_bert).train()
    assert not tiny_bert.training and model.side.training
    kept = unipt.get_unipt_model(tiny_bert, unipt.UniPTConfig(keep_backbone_dropout=True)).train()
    assert kept.backbone.training


def test_only_side_parameters_train(tiny_bert, capsys):
    model = unipt.get_unipt_model(tiny_bert)
    trainable, total = model.trainable_parameters()
    assert trainable == sum(p.numel() for p in model.side.parameters())
    assert total == trainable + sum(p.numel() for p in tiny_bert.parameters())
    model.print_trainable_parameters()
    assert f"trainable params: {trainable:,}" in capsys.readouterr().out


def test_save_load_roundtrip_is_exact(tiny_bert, tiny_batch, tmp_path):
    model = unipt.get_unipt_model(tiny_bert).eval()
    with torch.no_grad():
        for p in model.side.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # make sure we are not comparing two fresh inits
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "unipt_config.json", "unipt_side.safetensors"]
    meta = json.loads((tmp_path / "unipt_config.json").read_text())
    assert meta["format_version"] == 2 and meta["unipt_version"] == unipt.__version__
    assert meta["config"] == unipt.UniPTConfig().to_dict()  # what was asked for, untouched
    assert meta["resolved"]["in_widths"] == [32] * 4 and meta["resolved"]["input_kind"] == "sequence"
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "unipt_side.safetensors")))
    assert keys == set(model.side.state_dict()) and not any(k.startswith("backbone") for k in keys)
    again = unipt.UniPTModel.from_pretrained(tiny_bert, tmp_path).eval()
    assert torch.equal(again(**tiny_batch).last_hidden_state, model(**tiny_batch).last_hidden_state)
    assert again.trainable_parameters()[0] == 0
    assert unipt.UniPTModel.from_pretrained(tiny_bert, tmp_path, is_trainable=True).trainable_parameters()[0] > 0


def test_loading_onto_another_backbone_is_refused(tiny_bert, tmp_path):
    from transformers import BertConfig, BertModel

    unipt.get_unipt_model(tiny_bert).save_pretrained(tmp_path)
    other = BertModel(BertConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, vocab_size=100))
    with pytest.raises(ValueError, match="different backbone"):
        unipt.UniPTModel.from_pretrained(other, tmp_path)


def test_loading_a_missing_folder_names_the_file(tiny_bert, tmp_path):
    with pytest.raises(FileNotFoundError, match="unipt_config.json"):
        unipt.UniPTModel.from_pretrained(tiny_bert, tmp_path / "nothing")


def test_failed_save_keeps_the_previous_checkpoint(tiny_bert, tmp_path, monkeypatch):
    model = unipt.get_unipt_model(tiny_bert)
    model.save_pretrained(tmp_path)
    before = (tmp_path / "unipt_side.safetensors").read_bytes()

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("unipt.pretrained.save_file", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        model.save_pretrained(tmp_path)
    assert (tmp_path / "unipt_side.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "unipt_config.json", "unipt_side.safetensors"]


def test_wrong_width_taps_name_the_fix():
    side = build_side_network(unipt.UniPTConfig(in_widths=[16, 16, 16]))
    with pytest.raises(ValueError, match="width 16"):
        side([torch.randn(1, 4, 16), torch.randn(1, 4, 8), torch.randn(1, 4, 16)])
    with pytest.raises(ValueError, match="expected 3 tapped layers"):
        side([torch.randn(1, 4, 16)])
