"""Frozen probe, full fine-tuning and BitFit: trainable sets, saved state, shapes, modes, learning."""

from __future__ import annotations

import torch

from unipt.baselines import BitFit, FrozenProbe, FullFineTuning
from unipt.outputs import AdaptedOutput
from unipt.registry import build_method

from .helpers import HIDDEN, TinyCNN, train_a_few_steps


def test_frozen_has_nothing_to_train(bert, batch):
    method = FrozenProbe(bert())
    assert method.trainable_parameters()[0] == 0
    assert all(not p.requires_grad for p in method.backbone.parameters())
    assert method.saved_state_dict() == {} and method.saved_bytes() == 0
    out = method(**batch)
    assert isinstance(out, AdaptedOutput)
    assert out.last_hidden_state.shape == (4, 9, HIDDEN) and out.pooled.shape == (4, HIDDEN)
    assert torch.equal(out.attention_mask, batch["attention_mask"])
    assert not out.last_hidden_state.requires_grad  # ran under no_grad: no graph at all


def test_frozen_backbone_stays_in_eval_mode(bert):
    method = FrozenProbe(bert()).train()
    assert method.training and not method.backbone.training
    assert FrozenProbe(bert(), backbone_train_mode=True).train().backbone.training


def test_frozen_feature_map_becomes_grid_tokens(images):
    out = FrozenProbe(TinyCNN())(**images)
    assert out.last_hidden_state.shape == (2, 16, 32)  # 4x4 grid of 32 channels
    assert out.attention_mask is None


def test_frozen_head_only_learns(bert, batch):
    losses = train_a_few_steps(FrozenProbe(bert()), batch)
    assert losses[-1] < losses[0]


def test_full_trains_everything_and_saves_the_backbone(bert, batch):
    method = FullFineTuning(bert())
    trainable, total = method.trainable_parameters()
    assert trainable == total == sum(p.numel() for p in method.backbone.parameters())
    assert set(method.saved_state_dict()) == set(method.backbone.state_dict())
    assert method.train().backbone.training  # dropout on while fine-tuning
    losses = train_a_few_steps(method, batch, lr=1e-3)
    assert losses[-1] < losses[0]


def test_bitfit_trains_exactly_the_biases(bert, batch):
    backbone = bert()
    biases = sum(p.numel() for n, p in backbone.named_parameters() if n.endswith(".bias"))
    method = BitFit(backbone)
    names = [n for n, _ in method.named_trainable_parameters()]
    assert names and all(n.endswith(".bias") for n in names)
    assert method.trainable_parameters()[0] == biases
    assert set(method.saved_state_dict()) == set(names)
    losses = train_a_few_steps(method, batch)
    assert losses[-1] < losses[0]
    grads = [n for n, p in method.named_parameters() if p.grad is not None]
    assert all(n.endswith(".bias") for n in grads)


def test_registry_builds_the_same_classes(bert):
    assert isinstance(build_method("frozen", bert()), FrozenProbe)
    assert isinstance(build_method("bitfit", bert()), BitFit)
