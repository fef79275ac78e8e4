"""The typed batch every training and evaluation step reads.

A :class:`Batch` has one :class:`TowerBatch` per tower (what the tower reads: the backbone's inputs, or
its taps read back from an activation cache) and the task's targets::

    Batch(towers={"image": TowerBatch(inputs={"pixel_values": [B, 3, H, W]}),
                  "text": TowerBatch(taps=Taps(...))},            # cached: the backbone never runs
          targets={"label": [B], "image_index": [B], ...})

Video towers read ``B * T`` frames (``frames_per_item = T``) with a ``frame_mask`` ``[B, T]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from unipt.taps import Taps


def move(value: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """``value`` with every tensor inside (dicts, lists, dataclasses with ``to``) moved to ``device``."""
    if isinstance(value, torch.Tensor) or hasattr(value, "to"):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, Mapping):
        return {k: move(v, device, non_blocking) for k, v in value.items()}
    if isinstance(value, list):
        return [move(v, device, non_blocking) for v in value]
    return value


@dataclass
class TowerBatch:
    """What one tower reads for one batch: exactly one of ``inputs`` (live) and ``taps`` (cached).

    Attributes:
        inputs: the backbone's keyword inputs (``input_ids`` ``[B, L]``, ``pixel_values`` ``[B, 3, H, W]``...).
        taps: the frozen backbone's taps, read back from an activation cache.
        frames_per_item: video towers: ``T`` frames per item (``inputs`` then hold ``B * T`` frames).
        frame_mask: video towers: ``[B, T]``, 1 for real frames.
    """

    inputs: dict[str, Any] | None = None
    taps: Taps | None = None
    frames_per_item: int | None = None
    frame_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.inputs is None) == (self.taps is None):
            raise ValueError("a TowerBatch holds either the backbone's inputs or cached taps (exactly one)")

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TowerBatch:
        return TowerBatch(**{f.name: move(getattr(self, f.name), device, non_blocking)
                             for f in dataclasses.fields(self)})


@dataclass
class Batch:
    """One batch: ``towers`` (what each tower reads) and ``targets`` (what the task compares against; a
    preprocessor's own targets, e.g. MDETR's token maps, join them)."""

    towers: dict[str, TowerBatch]
    targets: dict[str, Any] = field(default_factory=dict)
    record_ids: list[int] | None = None  # dataset indices of the records (the training loader adds them)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Moved to ``device`` (Accelerate's data loader calls this)."""
        return Batch({k: v.to(device, non_blocking) for k, v in self.towers.items()},
                     move(self.targets, device, non_blocking), self.record_ids)


# Several tasks on one record: task -> (record field holding its label, class name -> id or None for ints).
TaskLabels = dict[str, tuple[str, dict[str, int] | None]]


def collate_targets(records: Sequence[dict[str, Any]], answer_index: dict[str, int] | None = None,
                    task_labels: TaskLabels | None = None) -> dict[str, torch.Tensor]:
    """The task targets of ``records``: ``label`` [B], ``image_index`` / ``video_index`` [B],
    ``answer_scores`` [B, A], ``boxes`` [B, 4] (each only when the records carry it), and
    ``<task>/label`` [B] for each task of ``task_labels`` that reads another field than ``label``.

    Args:
        records: raw records (or the targets an activation cache stored for them).
        answer_index: answer -> class index, for VQA soft scores (``answers`` dicts in the records).
        task_labels: ``{task: (field, vocabulary)}`` (see :data:`TaskLabels`).
    """
    targets: dict[str, torch.Tensor] = {}
    first = records[0]
    if "label" in first:
        targets["label"] = torch.tensor([int(r["label"]) for r in records])
    if "item_index" in first:
        index = torch.tensor([int(r["item_index"]) for r in records])
        targets["image_index"] = targets["video_index"] = index
    if "answers" in first and answer_index is not None:
        scores = torch.zeros(len(records), len(answer_index))
        for i, record in enumerate(records):
            for answer, score in record["answers"].items():
                if answer in answer_index:
                    scores[i, answer_index[answer]] = float(score)
        targets["answer_scores"] = scores
    if "answer" in first and answer_index is not None and "label" not in first:
        targets["label"] = torch.tensor([answer_index.get(r["answer"], -1) for r in records])
    if "box" in first:
        targets["boxes"] = torch.tensor([normalized_cxcywh(r) for r in records], dtype=torch.float32)
    for task, (name, vocabulary) in (task_labels or {}).items():
        if name != "label":
            targets[f"{task}/label"] = torch.tensor([encode_label(r, name, vocabulary, task) for r in records])
    return targets


def encode_label(record: dict[str, Any], name: str, vocabulary: dict[str, int] | None, task: str) -> int:
    """``record[name]`` as a class id (through ``vocabulary`` for class names)."""
    if name not in record:
        raise KeyError(f"task {task!r} reads its label from record field {name!r}, but records have "
                       f"{sorted(record)}; set tasks.{task}.label_field")
    value = record[name]
    if vocabulary is None:
        return int(value)
    value = str(value)
    if value not in vocabulary:
        raise ValueError(f"task {task!r}: label {value!r} (field {name!r}) is not among the training split's "
                         f"{len(vocabulary)} classes")
    return vocabulary[value]


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
