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
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from unipt.bench.isolate import IsolatedError, run_isolated
from unipt.bench.workload import MethodSpec, Workload, as_specs, build_training_step

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


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


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{field} not in {_STATUS}")
    return int(match.group(1))


class _RssPeak:
    """CPU peak RSS since :meth:`reset`: kernel high-water mark if resettable, else a sampling thread."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.backend = "cpu-vmhwm"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0

    def current(self) -> int:
        return _status_kib("VmRSS") * 1024

    def reset(self) -> None:
        try:
            _CLEAR_REFS.write_text("5")
            if _status_kib("VmHWM") <= _status_kib("VmRSS") + 4:  # the mark really went down
                return
        except OSError:
            pass
        self._start_sampler()

    def _start_sampler(self) -> None:
        import psutil

        self.backend = "cpu-sampled"
        proc = psutil.Process()
        self._sampled = proc.memory_info().rss

        def sample() -> None:
            while not self._stop.is_set():
                self._sampled = max(self._sampled, proc.memory_info().rss)
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def peak(self) -> int:
        if self._thread is None:
            return _status_kib("VmHWM") * 1024
        self._stop.set()
        self._thread.join()
        return max(self._sampled, self.current())


def release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so a later peak is not hidden.

    Without it, memory freed while building the model (probe forwards, weight loading) stays in the
    resident set and a training step can reuse it without raising RSS. A no-op where unavailable.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
