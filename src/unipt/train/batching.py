"""Collate raw records into a :class:`~unipt.batch.Batch`: backbone inputs per tower plus the task's targets.

A tower whose ``field`` is ``*`` hands its preprocessor the whole records (CLIP-ViL reads image and
question, MDETR image, caption and token spans together). A preprocessor may return batch targets aligned
with its own tokenization under ``"targets"`` (MDETR's ``token_map``); they join the batch's targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from unipt.backbones import Backbone
from unipt.batch import Batch, TaskLabels, TowerBatch, collate_targets

WHOLE_RECORD = "*"  # a tower field that passes whole records to the preprocessor
PREPROCESSOR_TARGETS = "targets"  # preprocessor outputs that are batch targets, not backbone inputs


class Collator:
    """Builds batches for the towers ``{name: (record field, backbone)}``.

    Args:
        towers: what each tower reads from a record and how to preprocess it.
        answer_index: answer -> class index, for VQA soft scores (``answers`` dicts in the records).
        task_labels: several tasks: where each task's label comes from (:data:`unipt.batch.TaskLabels`).
    """

    def __init__(self, towers: dict[str, tuple[str, Backbone]], answer_index: dict[str, int] | None = None,
                 task_labels: TaskLabels | None = None):
        self.towers = towers
        self.answer_index = answer_index
        self.task_labels = task_labels

    def __call__(self, records: Sequence[dict[str, Any]]) -> Batch:
        towers, targets = self.collate_towers(records)
        return Batch(towers, {**targets, **collate_targets(records, self.answer_index, self.task_labels)})

    def tower_inputs(self, records: Sequence[dict[str, Any]]) -> dict[str, TowerBatch]:
        """Every tower's preprocessed backbone inputs (video towers: all frames, flattened)."""
        return self.collate_towers(records)[0]

    def collate_towers(self, records: Sequence[dict[str, Any]]) -> tuple[dict[str, TowerBatch], dict[str, Any]]:
        """Every tower's backbone inputs, and the targets their preprocessors returned."""
        towers, targets = {}, {}
        for name, (field, backbone) in self.towers.items():
            values = list(records) if field == WHOLE_RECORD else [_field(r, field, name) for r in records]
            frames = mask = None
            if field == "video":
                values, mask, frames = _flatten_frames(values, records)
            inputs = backbone.preprocess(values)
            targets.update(inputs.pop(PREPROCESSOR_TARGETS, None) or {})
            towers[name] = TowerBatch(inputs=inputs, frames_per_item=frames, frame_mask=mask)
        return towers, targets


def _field(record: dict[str, Any], field: str, tower: str) -> Any:
    try:
        return record[field]
    except KeyError:
        raise KeyError(
            f"tower {tower!r} reads record field {field!r}, but records have {sorted(record)}; "
            f"set towers.{tower}.field in the run config"
        ) from None


def _flatten_frames(videos: list[list[Any]], records: Sequence[dict[str, Any]]) -> tuple[list[Any], torch.Tensor, int]:
    """Pad every video to the longest with its last frame; frames become one flat list ``B*T``."""
    frames = max(len(v) for v in videos)
    flat, mask = [], torch.zeros(len(videos), frames)
    for i, (video, record) in enumerate(zip(videos, records, strict=True)):
        real = record.get("frame_mask")
        count = sum(real) if real else len(video)
        mask[i, : min(count, frames)] = 1
        flat.extend(list(video) + [video[-1]] * (frames - len(video)))
    return flat, mask, frames
