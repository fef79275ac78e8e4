"""Collate cached records into the batches the trained system reads: ``batch["taps"][tower] = Taps``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from unipt.taps import Taps
from unipt.train.batching import Collator


@dataclass
class CachedTaps(Taps):
    """:class:`Taps` that Accelerate can move to the training device (it calls ``.to(device)``)."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> CachedTaps:
        def move(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return x.to(device, non_blocking=non_blocking)
            if isinstance(x, list):
                return [move(v) for v in x]
            return x

        return CachedTaps(**{f.name: move(getattr(self, f.name)) for f in fields(self)})


def collate_taps(entries: Sequence[dict[str, Any]], dtype: torch.dtype = torch.float32) -> CachedTaps:
    """Per-record taps of one tower -> batched :class:`CachedTaps`.

    Masked taps are right-padded with zeros to the longest record: ``hidden[j]`` ``[B, L, D_j]`` and
    ``mask`` ``[B, L]`` int64 (0 on padding). Other taps are stacked: ``[B, C, H, W]`` / ``[B, L, D]``.
    """
    first = entries[0]
    count = len(first["hidden"])
    if first["mask"] is not None:
        length = max(int(e["mask"].shape[0]) for e in entries)
        mask = torch.zeros(len(entries), length, dtype=torch.long)
        hidden = [torch.zeros(len(entries), length, *first["hidden"][j].shape[1:], dtype=dtype) for j in range(count)]
        for i, e in enumerate(entries):
            n = int(e["mask"].shape[0])
            mask[i, :n] = e["mask"]
            for j in range(count):
                hidden[j][i, :n] = e["hidden"][j]
    else:
        mask = None
        hidden = [torch.stack([e["hidden"][j] for e in entries]).to(dtype) for j in range(count)]
    final = torch.stack([e["final"] for e in entries]).to(dtype) if first["final"] is not None else None
    index = torch.stack([e["class_index"] for e in entries]).long() if first["class_index"] is not None else None
    decoder = [torch.stack([e["decoder_hidden"][k] for e in entries]).to(dtype)
               for k in range(len(first["decoder_hidden"]))]
    return CachedTaps(hidden, mask, final, index, decoder)


class CacheCollator:
    """Batches of :class:`~unipt.cache.CachedDataset` records: ``{"taps": {tower: CachedTaps}, "label": [B],
    "image_index": [B], ...}`` (targets exactly as :class:`~unipt.train.batching.Collator` builds them)."""

    def __init__(self, answer_index: dict[str, int] | None = None):
        self.targets = Collator({}, answer_index)

    def __call__(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {"taps": {}, "inputs": {}, "frames_per_item": {}}
        for tower in records[0]["taps"]:
            batch["taps"][tower] = collate_taps([r["taps"][tower] for r in records])
        batch.update(self.targets.targets([r["targets"] for r in records]))
        return batch


class RoutingCollator:
    """Cached records go to ``cached``, raw records (a split without a cache) to ``live``."""

    def __init__(self, cached: Callable[[Sequence[dict[str, Any]]], dict[str, Any]],
                 live: Callable[[Sequence[dict[str, Any]]], dict[str, Any]]):
        self.cached, self.live = cached, live

    def __call__(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return self.cached(records) if "taps" in records[0] else self.live(records)
