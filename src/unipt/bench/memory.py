"""Peak training memory, each method measured in its own fresh process.

Allocators keep freed memory around (CUDA's caching allocator, glibc's heap), so a method measured
after another one in the same process inherits its footprint. Every measurement therefore runs in a
fresh process (:mod:`unipt.bench.isolate`) that builds the workload, records a baseline *after* the
model, batch and optimizer exist, runs a few training steps and reports the peak.

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (allocated, not reserved).
* CPU: the process's resident set. The high-water mark ``VmHWM`` in ``/proc/self/status`` is reset by
  writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0); where that is not permitted a psutil
  thread samples RSS every millisecond instead (which can miss very short spikes).

``peak_delta_bytes`` (peak minus the post-load baseline: gradients, optimizer state, activations and
temporaries) is comparable across devices; ``peak_bytes`` is the absolute reading.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from unipt.bench.isolate import IsolatedError, run_isolated
from unipt.bench.workload import MethodSpec, Workload, as_specs, build_training_step
from unipt.rss import RssPeak as _RssPeak
from unipt.rss import release_free_heap


@dataclass
class PeakMemory:
    """One peak-memory reading (bytes). ``backend`` says how it was measured."""

    method: str
    backend: str  # "cuda", "cpu-vmhwm" or "cpu-sampled"
    baseline_bytes: int
    peak_bytes: int
    steps: int

    @property
    def peak_delta_bytes(self) -> int:
        """Peak above the loaded model: what training itself needs."""
        return max(0, self.peak_bytes - self.baseline_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "peak_delta_bytes": self.peak_delta_bytes}


def peak_of(fn: Callable[[], object], label: str, *, steps: int = 3, device: str = "cpu") -> PeakMemory:
    """Peak memory while calling ``fn()`` ``steps`` times, over the memory in use just before.

    Everything ``fn`` needs (model, batch, optimizer) must already exist, so the baseline includes it.
    Only meaningful in a fresh process on CPU (see the module docstring); on CUDA the allocator's
    ``max_memory_allocated`` counts live tensors only, so other resident models do not change the delta.
    """
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        for _ in range(steps):
            fn()
        torch.cuda.synchronize(device)
        return PeakMemory(label, "cuda", baseline, torch.cuda.max_memory_allocated(device), steps)
    release_free_heap()
    meter = _RssPeak()
    meter.reset()
    baseline = meter.current()
    for _ in range(steps):
        fn()
    return PeakMemory(label, meter.backend, baseline, meter.peak(), steps)


def measure_in_this_process(
    workload: Workload,
    method: str,
    options: Mapping[str, Any] | None = None,
    *,
    steps: int = 3,
    device: str = "cpu",
    seed: int = 0,
) -> PeakMemory:
    """Build the step here and measure its peak. Only meaningful in a fresh process (see module doc)."""
    step = build_training_step(workload, method, options, seed=seed, device=device)
    return peak_of(step, method, steps=steps, device=device)


def measure_peak_memory(
    workload: Workload,
    method: str,
    options: Mapping[str, Any] | None = None,
    *,
    steps: int = 3,
    device: str = "cpu",
    seed: int = 0,
    threads: int | None = None,
    timeout_s: float = 600.0,
) -> PeakMemory:
    """Measure ``method`` on ``workload`` in a fresh process and return its :class:`PeakMemory`.

    The process comes from :func:`unipt.bench.isolate.run_isolated` (a forkserver that has only imported
    the libraries, else ``spawn``). ``workload`` and ``options`` must be picklable (factories are
    top-level functions or partials).
    """
    try:
        return run_isolated(
            measure_in_this_process, workload, method, dict(options or {}), steps=steps, device=device,
            seed=seed, threads=threads, timeout_s=timeout_s,
        )
    except IsolatedError as err:
        raise RuntimeError(f"peak-memory measurement of {method!r} failed: {err}") from err


def measure_peak_memory_all(
    workload: Workload,
    methods: Iterable[str | MethodSpec],
    *,
    steps: int = 3,
    device: str = "cpu",
    progress: bool = True,
    **kwargs: Any,
) -> dict[str, PeakMemory]:
    """:func:`measure_peak_memory` for every method, one fresh process each; keyed by ``MethodSpec.key``."""
    from tqdm.auto import tqdm

    results: dict[str, PeakMemory] = {}
    for spec in tqdm(as_specs(methods), desc="peak memory", disable=not progress, leave=False):
        reading = measure_peak_memory(
            workload, spec.method, spec.options, steps=steps, device=device, **kwargs
        )
        reading.method = spec.key
        results[spec.key] = reading
    return results


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory failure (CUDA's own error, or an allocator's message)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def free_memory(device: str) -> None:
    """Drop unreachable tensors and, on CUDA, the caching allocator's free blocks."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
