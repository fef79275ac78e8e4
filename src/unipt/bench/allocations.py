"""Every CPU allocation of a block of code, from the PyTorch profiler: a CPU ``max_memory_allocated``.

CUDA's caching allocator counts its bytes; the CPU allocator does not, and a process's resident set
mixes tensors with malloc's kept blocks. With ``profile_memory=True`` the profiler receives each
allocation and free of PyTorch's CPU allocator, the buffers that kernels allocate internally included
(a convolution's oneDNN reorders, for instance, which no tensor-level hook sees). Their running sum,
relative to the start of the block, is what the block adds to memory at each moment.

:func:`record_allocations` cuts that running sum at the outermost profiled operations (an ATen
operation in the forward pass, one autograd node in the backward pass): each entry is the operation's
name and the highest sum reached inside it, exact and with every block rounded up to 512 bytes as CUDA's
caching allocator rounds (what ``max_memory_allocated`` counts on a GPU). Running the same code at two
batch sizes gives two entry lists that align operation by operation (see :mod:`unipt.bench.planner`).

Example::

    with record_allocations() as timeline:
        model(x).sum().backward()
    timeline.peak_bytes       # the most bytes the block had allocated at once
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

CUDA_BLOCK = 512  # the CUDA caching allocator's smallest block and rounding step
MEMORY_EVENT = "[memory]"
OUTSIDE = "(between operations)"


def cuda_rounded(nbytes: int) -> int:
    """``nbytes`` rounded up to the caching allocator's 512-byte blocks (sign kept, for frees)."""
    size = -(-max(abs(nbytes), 1) // CUDA_BLOCK) * CUDA_BLOCK
    return size if nbytes >= 0 else -size


@dataclass
class AllocationTimeline:
    """Per outermost operation: ``(name, highest bytes allocated since the start, the same 512-rounded)``.

    ``final_bytes`` / ``final_rounded``: what the block left allocated (e.g. the gradients of a backward).
    """

    entries: list[tuple[str, int, int]] = field(default_factory=list)
    final_bytes: int = 0
    final_rounded: int = 0

    @property
    def peak_bytes(self) -> int:
        return max((e[1] for e in self.entries), default=max(0, self.final_bytes))

    @property
    def peak_rounded(self) -> int:
        return max((e[2] for e in self.entries), default=max(0, self.final_rounded))


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Hide what libkineto prints on fd 2 when a profiling session starts or stops (nothing else runs here)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _outermost(ops: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Operations not nested in another one (``ops`` sorted by start, longest first on ties)."""
    outer: list[tuple[int, int, str]] = []
    end = -1
    for start, stop, name in ops:
        if start >= end:
            outer.append((start, stop, name))
            end = stop
    return outer


def build_timeline(events: list[object]) -> AllocationTimeline:
    """An :class:`AllocationTimeline` from the profiler's kineto events (CPU memory and operation events)."""
    cpu = torch.autograd.DeviceType.CPU
    memory = sorted((e.start_ns(), e.nbytes()) for e in events  # type: ignore[attr-defined]
                    if e.name() == MEMORY_EVENT and e.device_type() == cpu)  # type: ignore[attr-defined]
    ops = [e for e in events if e.name() != MEMORY_EVENT and e.device_type() == cpu]  # type: ignore[attr-defined]
    threads: dict[int, int] = {}
    for e in ops:
        threads[e.start_thread_id()] = threads.get(e.start_thread_id(), 0) + 1  # type: ignore[attr-defined]
    main = max(threads, key=threads.__getitem__) if threads else None
    spans = sorted(((e.start_ns(), e.end_ns(), e.name()) for e in ops  # type: ignore[attr-defined]
                    if e.start_thread_id() == main), key=lambda s: (s[0], -s[1]))  # type: ignore[attr-defined]
    timeline = AllocationTimeline()
    live = live_rounded = 0
    i = 0
    for start, stop, name in _outermost(spans):
        while i < len(memory) and memory[i][0] < start:  # allocations outside any operation
            live, live_rounded = live + memory[i][1], live_rounded + cuda_rounded(memory[i][1])
            i += 1
            _extend(timeline, OUTSIDE, live, live_rounded)
        peak, peak_rounded = live, live_rounded
        while i < len(memory) and memory[i][0] <= stop:
            live, live_rounded = live + memory[i][1], live_rounded + cuda_rounded(memory[i][1])
            peak, peak_rounded = max(peak, live), max(peak_rounded, live_rounded)
            i += 1
        timeline.entries.append((name, peak, peak_rounded))
    for _, nbytes in memory[i:]:
        live, live_rounded = live + nbytes, live_rounded + cuda_rounded(nbytes)
        _extend(timeline, OUTSIDE, live, live_rounded)
    timeline.final_bytes, timeline.final_rounded = live, live_rounded
    return timeline


def _extend(timeline: AllocationTimeline, name: str, live: int, rounded: int) -> None:
    """Merge consecutive out-of-operation allocations into one entry holding their highest sum."""
    if timeline.entries and timeline.entries[-1][0] == name:
        _, peak, peak_rounded = timeline.entries[-1]
        timeline.entries[-1] = (name, max(peak, live), max(peak_rounded, rounded))
    else:
        timeline.entries.append((name, live, rounded))


@contextlib.contextmanager
def record_allocations() -> Iterator[AllocationTimeline]:
    """Profile the block's CPU allocations; the yielded timeline is filled in when the block ends."""
    from torch.profiler import ProfilerActivity, profile

    timeline = AllocationTimeline()
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _stderr_silenced():
        prof.start()
    try:
        yield timeline
    finally:
        with _stderr_silenced():
            prof.stop()
    built = build_timeline(list(prof.profiler.kineto_results.events()))  # type: ignore[union-attr]
    timeline.entries, timeline.final_bytes, timeline.final_rounded = (
        built.entries, built.final_bytes, built.final_rounded)
