"""Several named side networks over one backbone pass: one forward of the backbone serves every side,
each side trains on its own loss and saves / loads on its own."""

from __future__ import annotations

import pytest
import torch

import unipt


def count_backbone_calls(model: unipt.UniPTModel) -> list[int]:
    calls: list[int] = []
    model.backbone.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_every_active_side_reads_one_backbone_pass(tiny_bert, tiny_batch):
    model = unipt.get_unipt_model(tiny_bert, unipt.UniPTConfig(reduction=2))
    model.add_side("topic", unipt.UniPTConfig(reduction=4, fusion="mlp_norm"))
    assert model.active == ["default", "topic"] and set(model.sides) == {"default", "topic"}
    model.eval()
    calls = count_backbone_calls(model)
    with torch.no_grad():
        both = model(**tiny_batch)
    assert len(calls) == 1 and set(both) == {"default", "topic"}
    assert both["topic"].last_hidden_state.shape == (3, 9, 32) and model.side_dims("topic").side_width == 8
    for name in ("default", "topic"):  # each side alone computes exactly what it computed among others
        model.set_active(name)
        with torch.no_grad():
            alone = model(**tiny_batch)
        torch.testing.assert_close(alone.last_hidden_state, both[name].last_hidden_state, rtol=0, atol=0)
    assert len(calls) == 3

    model.set_active(["default", "topic"])
    model.train()
    outs = model(**tiny_batch)
    (outs["default"].pooled.sum() + outs["topic"].pooled.square().sum()).backward()
    for side in model.sides.values():
        assert all(p.grad is not None for p in side.parameters())
    assert all(p.grad is None for p in tiny_bert.parameters())


def test_a_side_that_reads_other_taps_is_refused(tiny_bert):
    model = unipt.get_unipt_model(tiny_bert)
    with pytest.raises(ValueError, match="would read other taps"):
        model.add_side("layer0", unipt.UniPTConfig(taps=["encoder.layer.0", "encoder.layer.1"]))
    with pytest.raises(ValueError, match="must be new"):
        model.add_side("default")
    with pytest.raises(ValueError, match="unknown side"):
        model.set_active("nope")


def test_each_side_saves_and_loads_on_its_own(tiny_bert, tiny_batch, tmp_path):
    model = unipt.get_unipt_model(tiny_bert)
    model.add_side("topic", unipt.UniPTConfig(reduction=4))
    with torch.no_grad():
        for p in model.sides.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    with torch.no_grad():
        expected = model(**tiny_batch)

    model.save_pretrained(tmp_path / "all")  # the first side at the root, the others in sub-folders
    assert (tmp_path / "all" / "topic" / "unipt_config.json").is_file()
    again = unipt.UniPTModel.from_pretrained(tiny_bert, tmp_path / "all").eval()
    assert again.active == ["default", "topic"]
    with torch.no_grad():
        got = again(**tiny_batch)
    for name in expected:
        torch.testing.assert_close(got[name].last_hidden_state, expected[name].last_hidden_state, rtol=0, atol=0)

    model.save_pretrained(tmp_path / "topic", side="topic")  # one side alone: an ordinary saved model
    alone = unipt.UniPTModel.from_pretrained(tiny_bert, tmp_path / "topic").eval()
    assert list(alone.sides) == ["topic"]
    with torch.no_grad():
        torch.testing.assert_close(alone(**tiny_batch).last_hidden_state, expected["topic"].last_hidden_state)

    single = unipt.get_unipt_model(tiny_bert).eval()
    single.load_side("topic", tmp_path / "topic")
    single.set_active("topic")
    with torch.no_grad():
        torch.testing.assert_close(single(**tiny_batch).last_hidden_state, expected["topic"].last_hidden_state)
