"""Interleaved timing: call order and bookkeeping (never assertions on the clock itself)."""

from __future__ import annotations

import torch
from torch import nn

from unipt.bench.timing import inference_forward, time_interleaved


def test_round_robin_with_rotating_start():
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    results = time_interleaved(fns, repeats=3, warmup=1, progress=False)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    for name, result in results.items():
        assert result.name == name and len(result.samples_ms) == 3
        assert result.q25_ms <= result.median_ms <= result.q75_ms


def test_inference_forward_records_no_graph():
    model = nn.Linear(4, 2)
    seen: list[bool] = []
    model.register_forward_hook(lambda _m, _i, out: seen.append(out.requires_grad))
    inference_forward(model, {"input": torch.randn(3, 4)})()
    assert seen == [False] and not model.training
