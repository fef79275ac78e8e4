"""UniPTForCausalLM on tiny random decoders of five families: the untrained model IS the backbone,
causality, no gradient or saved activation in the backbone, HF-compatible loss, save/load."""

import json

import pytest
import torch
from torch.autograd.graph import saved_tensors_hooks

import unipt
from unipt.lm import UniPTForCausalLM

from .conftest import FAMILIES, backbone_logits, randomise_up_projection


@pytest.mark.parametrize("family", FAMILIES)
def test_untrained_model_returns_the_backbones_logits_exactly(tiny_lm, tokens, family):
    backbone = tiny_lm(family)
    expected = backbone_logits(backbone, tokens)
    model = unipt.get_unipt_model(backbone)  # a causal LM: auto-picked
    assert isinstance(model, UniPTForCausalLM)
    assert torch.equal(model(**tokens).logits, expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_outputs_up_to_t_are_bit_identical_when_later_tokens_change(tiny_lm, tokens, family):
    model = UniPTForCausalLM(tiny_lm(family))
    randomise_up_projection(model)
    changed = dict(tokens, input_ids=tokens["input_ids"].clone())
    changed["input_ids"][:, 6:] = (changed["input_ids"][:, 6:] + 17) % 256
    before, after = model(**tokens).logits, model(**changed).logits
    assert torch.equal(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_loss_equals_hugging_face_causal_lm_loss(tiny_lm, tokens):
    backbone = tiny_lm("llama")
    labels = tokens["input_ids"].masked_fill(tokens["attention_mask"] == 0, -100)
    labels[:, :4] = -100  # a "prompt" that is not scored
    positions = (tokens["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    expected = backbone(**tokens, position_ids=positions, labels=labels).loss
    out = UniPTForCausalLM(backbone)(**tokens, labels=labels)
    assert torch.allclose(out.loss, expected, atol=1e-6)
    summed = UniPTForCausalLM(tiny_lm("llama"))(**tokens, labels=labels, num_items_in_batch=4).loss
    assert torch.allclose(summed, expected * int((labels[:, 1:] != -100).sum()) / 4, atol=1e-5)


def count_saved(fn):
    saved = []
    with saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        result = fn()
    return result, saved


def test_backbone_gets_no_gradient_and_autograd_saves_none_of_its_tensors(tiny_lm, tokens):
    backbone = tiny_lm("qwen2")
    model = UniPTForCausalLM(backbone).train()
    randomise_up_projection(model)
    labels = tokens["input_ids"].masked_fill(tokens["attention_mask"] == 0, -100)
    out = model(**tokens, labels=labels)
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())
    assert all(p.grad is not None for p in model.side.parameters())
    (hidden, _), in_backbone = count_saved(lambda: model.backbone_states(**tokens))
    assert in_backbone == [] and all(h.grad_fn is None and not h.requires_grad for h in hidden)

    def side_and_head_only():
        side_out, _, _ = model.side(list(hidden), tokens["attention_mask"])
        adapted = model.adapt_final(hidden[-1], side_out)
        return model.loss(adapted, labels), model.lm_head(adapted)

    _, by_side = count_saved(side_and_head_only)
    _, in_total = count_saved(lambda: model(**tokens, labels=labels))
    assert len(in_total) == len(by_side) > 0  # everything saved is saved by the side network and the head


def test_left_padding_gives_the_same_logits_as_no_padding(tiny_lm):
    model = UniPTForCausalLM(tiny_lm("llama"))
    randomise_up_projection(model)
    ids = torch.randint(0, 256, (1, 6))
    padded = torch.cat([torch.full((1, 3), 256), ids], 1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 6, dtype=torch.long)], 1)
    alone = model(ids).logits
    with_pad = model(padded, attention_mask=mask).logits[:, 3:]
    assert torch.allclose(alone, with_pad, atol=1e-5)


def test_save_and_load_round_trip_is_exact(tiny_lm, tokens, tmp_path):
    model = UniPTForCausalLM(tiny_lm("gpt2"), unipt.UniPTConfig(task_type="causal_lm", side_width=8))
    randomise_up_projection(model)
    model.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "unipt_config.json").read_text())
    assert meta["config"]["task_type"] == "causal_lm"
    assert "UniPTForCausalLM.from_pretrained" in (tmp_path / "README.md").read_text()  # the model card
    with pytest.raises(ValueError, match=r"UniPTForCausalLM\.from_pretrained"):  # says which class loads it
        unipt.UniPTModel.from_pretrained(tiny_lm("gpt2"), tmp_path)
    again = UniPTForCausalLM.from_pretrained(tiny_lm("gpt2"), tmp_path)
    assert not any(p.requires_grad for p in again.side.parameters())
    assert torch.equal(again(**tokens).logits, model(**tokens).logits)
    with pytest.raises(ValueError, match="different backbone"):
        UniPTForCausalLM.from_pretrained(tiny_lm("llama"), tmp_path)
    with pytest.warns(UserWarning, match="other weights"):
        UniPTForCausalLM.from_pretrained(tiny_lm("gpt2", seed=1), tmp_path)


def test_only_the_side_network_trains(tiny_lm, capsys):
    model = UniPTForCausalLM(tiny_lm("mistral"))
    trainable, total = model.trainable_parameters()
    assert trainable == sum(p.numel() for p in model.side.parameters()) > 0
    assert total == trainable + sum(p.numel() for p in model.backbone.parameters())
    model.print_trainable_parameters()
    assert f"trainable params: {trainable:,}" in capsys.readouterr().out


def test_the_callers_config_is_not_changed(tiny_lm):
    config = unipt.UniPTConfig(reduction=4)
    model = unipt.get_unipt_model(tiny_lm("phi"), config)
    assert config.task_type is None and config.in_widths is None and config.output_mode == "replace"
    assert model.config.task_type == "causal_lm" and model.config.output_mode == "residual"
    assert model.config.in_widths is None and model.widths == [32, 32, 32]  # spec vs what the decoder determined


def test_one_config_on_two_decoders_of_different_widths(tiny_lm):
    from unipt.lm.backbone import tiny_decoder

    config = unipt.UniPTConfig(task_type="causal_lm", reduction=2)
    narrow = unipt.get_unipt_model(tiny_lm("llama"), config)
    torch.manual_seed(0)
    wide = unipt.get_unipt_model(tiny_decoder("llama", width=64, layers=3), config)
    assert narrow.widths == [32] * 3 and wide.widths == [64] * 4
    assert narrow.side.up_proj.linear.out_features == 32 and wide.side.up_proj.linear.out_features == 64
    assert config.in_widths is None


def test_clear_errors(tiny_lm, tokens):
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    with pytest.raises(ValueError, match="not a Hugging Face causal LM"):
        UniPTForCausalLM(bert)
    with pytest.raises(ValueError, match="causal LMs"):
        unipt.get_unipt_model(bert, unipt.UniPTConfig(backbone_quantization="int8"))
    model = UniPTForCausalLM(tiny_lm("llama"))
    with pytest.raises(ValueError, match="must cover the cached and the new tokens"):
        model(tokens["input_ids"], attention_mask=tokens["attention_mask"][:, :5])
    out = model(**tokens, use_cache=True)
    with pytest.raises(ValueError, match="together"):
        model(tokens["input_ids"][:, :1], cache=out.cache)
    with pytest.raises(ValueError, match="labels shape"):
        model(**tokens, labels=tokens["input_ids"][:, :3])
