"""Collate cached records into the :class:`~unipt.batch.Batch` the trained system reads (taps, no inputs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from unipt.batch import Batch, TaskLabels, TowerBatch, collate_targets
from unipt.taps import Taps


def collate_taps(entries: Sequence[dict[str, Any]], dtype: torch.dtype = torch.float32) -> Taps:
    """Per-record taps of one tower -> batched :class:`~unipt.taps.Taps`.

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
    return Taps(hidden, mask, final, index, decoder)


class CacheCollator:
    """Batches of :class:`~unipt.cache.CachedDataset` records: every tower's taps and the targets the cache
    stored (built exactly as for live records, :func:`unipt.batch.collate_targets`)."""

    def __init__(self, answer_index: dict[str, int] | None = None, task_labels: TaskLabels | None = None):
        self.answer_index, self.task_labels = answer_index, task_labels

    def __call__(self, records: Sequence[dict[str, Any]]) -> Batch:
        towers = {tower: TowerBatch(taps=collate_taps([r["taps"][tower] for r in records]))
                  for tower in records[0]["taps"]}
        return Batch(towers, collate_targets([r["targets"] for r in records], self.answer_index, self.task_labels))
