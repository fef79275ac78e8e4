"""The shared training step and its exact accounting on a tiny BERT, per method."""

from __future__ import annotations

import pytest

from unipt.bench.run import account_step
from unipt.bench.workload import MethodSpec, as_specs, build_training_step, tiny_bert_workload

WORKLOAD = tiny_bert_workload(hidden=64, layers=2, heads=2, seq_len=16, batch_size=8)
B, D, CLASSES = 8, 64, 2


def test_frozen_step_saves_only_the_head_activations():
    acc = account_step(build_training_step(WORKLOAD, "frozen"))
    # head Linear input [B, D] fp32 + log-softmax output [B, classes] fp32 + int64 targets [B]
    # + nll_loss's fp32 scalar total_weight
    assert acc["saved_activation_bytes"] == B * D * 4 + B * CLASSES * 4 + B * 8 + 4 == 2180
    head_params = D * CLASSES + CLASSES
    assert acc["gradient_bytes"] == head_params * 4
    assert acc["optimizer_state_bytes"] == 2 * head_params * 4 + 2 * 4


def test_side_methods_save_far_less_than_backprop_methods():
    saved = {
        m: account_step(build_training_step(WORKLOAD, m))["saved_activation_bytes"]
        for m in ["frozen", "lst", "lora", "bitfit", "full"]
    }
    assert saved["frozen"] < saved["lst"] < saved["lora"]
    assert saved["lst"] < saved["bitfit"] <= saved["full"]


def test_steps_are_reproducible_and_learn():
    first = build_training_step(WORKLOAD, "lora", lr=1e-2)()
    step = build_training_step(WORKLOAD, "lora", lr=1e-2)  # re-seeded: same weights, batch, dropout
    losses = [step() for _ in range(8)]
    assert losses[0] == pytest.approx(first)
    assert losses[-1] < losses[0]


def test_specs_need_unique_labels():
    specs = as_specs(["lora", MethodSpec("lora", {"r": 2}, label="lora-r2")])
    assert [s.key for s in specs] == ["lora", "lora-r2"]
    with pytest.raises(ValueError, match="duplicate"):
        as_specs(["lora", MethodSpec("lora", {"r": 2})])


def test_every_method_starts_from_the_same_head():
    frozen, lst = build_training_step(WORKLOAD, "frozen"), build_training_step(WORKLOAD, "lst")
    assert frozen.head.fc.weight.equal(lst.head.fc.weight)
    assert frozen.inputs["input_ids"].equal(lst.inputs["input_ids"])
