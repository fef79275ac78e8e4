"""Step time, measured fairly: methods interleaved round-robin in one process, median over steps.

Running method A for 50 steps and then method B for 50 steps lets machine drift (thermal throttling,
other jobs on a shared CPU, clock boosts) land on one method. Interleaving A, B, C, A, B, C... with the
start rotated every round spreads drift evenly, and the median ignores one-off stalls.

The physical reference is the *inference-only* forward of the same backbone on the same batch under
``torch.inference_mode()``: no method can train faster than that, so it anchors the other numbers.
This module is for benchmarks; tests must never assert on times.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class TimingResult:
    """Per-call wall time in milliseconds over ``len(samples_ms)`` timed calls (after warm-up)."""

    name: str
    median_ms: float
    q25_ms: float
    q75_ms: float
    samples_ms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summarise(name: str, samples: list[float]) -> TimingResult:
    if len(samples) >= 2:
        q25, _, q75 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q25 = q75 = samples[0]
    return TimingResult(name, statistics.median(samples), q25, q75, samples)


def _synchronizer(device: str | torch.device | None) -> Callable[[], None]:
    """Wait for queued GPU work so a timer measures execution, not just the launch."""
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def time_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    repeats: int = 20,
    warmup: int = 3,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, TimingResult]:
    """Time each callable ``repeats`` times, round-robin with a rotating start; return medians.

    Args:
        fns: name -> zero-argument callable (e.g. a ``TrainingStep``).
        repeats: timed calls per callable. warmup: untimed calls per callable first (allocator,
            lazy optimizer state, kernel selection).
        device: synchronise this CUDA device around every call (ignored on CPU).
    """
    from tqdm.auto import tqdm

    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    names = list(fns)
    sync = _synchronizer(device)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in tqdm(range(repeats), desc="timing (interleaved)", disable=not progress, leave=False):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = time.perf_counter()
            fns[name]()
            sync()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: _summarise(name, samples[name]) for name in names}


def inference_forward(backbone: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Callable[[], None]:
    """A callable running ``backbone(**inputs)`` in eval mode under ``torch.inference_mode()``."""
    backbone.eval()
    batch = dict(inputs)

    def run() -> None:
        with torch.inference_mode():
            backbone(**batch)

    return run
