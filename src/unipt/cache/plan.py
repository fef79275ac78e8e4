"""Estimate a cache's disk size and build time before building: probe one batch, extrapolate."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from unipt.cache.shards import DTYPES, layout_of, pack_bytes, pack_taps
from unipt.cache.source import TapSource


@dataclass
class Probe:
    """One build batch: its shard tensors, its record count and how long loading + tapping took."""

    pack: dict[str, torch.Tensor]
    records: int
    seconds: float

    @property
    def bytes_per_record(self) -> float:
        return pack_bytes(self.pack) / self.records


def probe_batch(source: TapSource, batch_size: int, dtype: str, padding: bool, repeats: int = 2) -> Probe:
    """Load, preprocess and tap the first ``batch_size`` records; the time is the fastest of ``repeats``
    runs (the first run pays one-off warm-up costs that a long build does not)."""
    records = min(batch_size, len(source.dataset))
    if records == 0:
        raise ValueError(f"the {source.role} split has no records to cache")
    collate = source.collate()
    loader = DataLoader(Subset(source.dataset, range(records)), batch_size=records, collate_fn=collate)
    best, pack = math.inf, {}
    for _ in range(max(1, repeats)):
        tick = time.perf_counter()
        batch, _targets = next(iter(loader))
        taps = source.tap(batch)
        pack = {k: v for name, t in taps.items() for k, v in pack_taps(name, t, DTYPES[dtype], padding).items()}
        best = min(best, time.perf_counter() - tick)
    return Probe(pack, records, best)


def estimate_cache(source: TapSource, *, batch_size: int, dtype: str = "fp32", padding: bool = True) -> dict[str, Any]:
    """Estimated size and build time of caching ``source`` (single process).

    Returns:
        ``records``, ``batch_size``, ``bytes_per_record``, ``estimated_mb``, ``seconds_per_batch``,
        ``estimated_seconds`` and per tower the stored ``layout`` (tap shapes; ``L`` = tokens per record).
        Token counts, and so sizes of padded text taps, are extrapolated from the first batch only.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown cache dtype {dtype!r}; use one of {sorted(DTYPES)}")
    size = batch_size
    probe = probe_batch(source, size, dtype, padding)
    records = len(source.dataset)
    batches = math.ceil(records / size)
    total = probe.bytes_per_record * records
    return {
        "split": source.role,
        "records": records,
        "batch_size": size,
        "dtype": dtype,
        "padding": padding,
        "bytes_per_record": round(probe.bytes_per_record, 1),
        "estimated_bytes": int(total),
        "estimated_mb": round(total / 2**20, 2),
        # three significant digits: a tiny cache's estimate must not round to 0 s
        "seconds_per_batch": float(f"{probe.seconds * size / probe.records:.3g}"),
        "estimated_seconds": float(f"{probe.seconds * size / probe.records * batches:.3g}"),
        "layout": {name: layout_of(name, probe.pack, padding) for name in source.towers},
    }


def format_plan(plan: dict[str, Any]) -> str:
    """A short Markdown summary of :func:`plan_cache`."""
    lines = [f"**split {plan['split']}**: {plan['records']} records, batch {plan['batch_size']}, {plan['dtype']}, "
             f"{'padded' if plan['padding'] else 'real tokens only'}", "",
             f"- disk ~ {plan['estimated_mb']:.1f} MB ({plan['bytes_per_record'] / 1024:.1f} KiB per record)",
             f"- build ~ {plan['estimated_seconds']:.1f} s ({plan['seconds_per_batch']:.3f} s per batch, "
             "one process)"]
    for name, layout in plan["layout"].items():
        lines.append(f"- tower {name}: {layout['num_hidden']} taps, shapes {layout['hidden_shapes']}")
    return "\n".join(lines)
