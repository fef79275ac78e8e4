"""Collate raw records into a batch: backbone inputs per tower plus the task's targets.

Batch layout::

    {"inputs": {tower: {backbone kwargs}},        # e.g. input_ids/attention_mask, pixel_values
     "label": [B], "image_index": [B],            # task targets, when the records carry them
     "answer_scores": [B, A], "boxes": [B, 4],
     "frames_per_item": {tower: T}, "<tower>_mask": [B, T]}   # video towers

A tower whose ``field`` is ``*`` hands its preprocessor the whole records (CLIP-ViL reads image and
question, MDETR image, caption and token spans together). A preprocessor may return batch targets aligned with its own
tokenization under ``"targets"`` (MDETR's ``token_map``); they join the batch's top level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from unipt.backbones import Backbone

WHOLE_RECORD = "*"  # a tower field that passes whole records to the preprocessor
PREPROCESSOR_TARGETS = "targets"  # preprocessor outputs that are batch targets, not backbone inputs


class Collator:
    """Builds batches for the towers ``{name: (record field, backbone)}``.

    Args:
        towers: what each tower reads from a record and how to preprocess it.
        answer_index: answer -> class index, for VQA soft scores (``answers`` dicts in the records).
    """

    def __init__(self, towers: dict[str, tuple[str, Backbone]], answer_index: dict[str, int] | None = None):
        self.towers = towers
        self.answer_index = answer_index

    def __call__(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {"inputs": {}, "frames_per_item": {}}
        for name, (field, backbone) in self.towers.items():
            values = list(records) if field == WHOLE_RECORD else [_field(r, field, name) for r in records]
            if field == "video":
                values, mask, frames = _flatten_frames(values, records)
                batch["frames_per_item"][name] = frames
                batch[f"{name}_mask"] = mask
            inputs = backbone.preprocess(values)
            batch.update(inputs.pop(PREPROCESSOR_TARGETS, None) or {})
            batch["inputs"][name] = inputs
        batch.update(self.targets(records))
        return batch

    def targets(self, records: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The task targets of ``records``: ``label`` [B], ``image_index`` [B], ``answer_scores`` [B, A],
        ``boxes`` [B, 4] (each only when the records carry it). Also used by the activation cache."""
        batch: dict[str, torch.Tensor] = {}
        first = records[0]
        if "label" in first:
            batch["label"] = torch.tensor([int(r["label"]) for r in records])
        if "item_index" in first:
            index = torch.tensor([int(r["item_index"]) for r in records])
            batch["image_index"] = batch["video_index"] = index
        if "answers" in first and self.answer_index is not None:
            batch["answer_scores"] = self._answer_scores(records)
        if "answer" in first and self.answer_index is not None and "label" not in first:
            batch["label"] = torch.tensor([self.answer_index.get(r["answer"], -1) for r in records])
        if "box" in first:
            batch["boxes"] = torch.tensor([normalized_cxcywh(r) for r in records], dtype=torch.float32)
        return batch

    def _answer_scores(self, records: Sequence[dict[str, Any]]) -> torch.Tensor:
        scores = torch.zeros(len(records), len(self.answer_index))
        for i, record in enumerate(records):
            for answer, score in record["answers"].items():
                if answer in self.answer_index:
                    scores[i, self.answer_index[answer]] = float(score)
        return scores


def normalized_cxcywh(record: dict[str, Any]) -> list[float]:
    """COCO ``[x, y, w, h]`` pixels -> ``[cx, cy, w, h]`` in 0..1 of the image size."""
    x, y, w, h = (float(v) for v in record["box"])
    width, height = record.get("width"), record.get("height")
    if not width or not height:
        image = record.get("image")
        if image is None:
            raise ValueError(f"record {record.get('image_path')} has a box but no image size (width/height)")
        width, height = image.size
    return [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height]


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
