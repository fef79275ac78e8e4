"""RefCOCO / RefCOCO+ / RefCOCOg referring expressions.

Two layouts are read:

* REFER (``root/<dataset>/refs(<split_by>).p`` + ``root/<dataset>/instances.json``): the pickle is a list
  of refs ``{"ref_id", "ann_id", "image_id", "split", "sentences": [{"sent", "raw", "sent_id"}], ...}``
  loaded with the restricted unpickler; ``instances.json`` is COCO (``images``, ``annotations`` with
  ``bbox`` = [x, y, w, h] in pixels).
* MDETR (``root/finetune_<dataset>_<split>.json``): COCO-style, one ``images`` entry per expression
  (with ``caption``) and its box in ``annotations``.

One record per referring sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.base import RecordDataset
from unipt.data.errors import DataFileNotFoundError, DataFormatError
from unipt.data.formats.safe_pickle import safe_load_pickle
from unipt.data.io import get_field, read_json

__all__ = ["REFCOCO_DATASETS", "load_refcoco"]

REFCOCO_DATASETS = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
_BOX_HINT = "COCO boxes are [x, y, width, height] in pixels"


def _box(obj: dict[str, Any], path: Path, where: str) -> list[float]:
    box = get_field(obj, "bbox", path, where, list, _BOX_HINT)
    if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        raise DataFormatError(
            path,
            record=where,
            field="bbox",
            problem=f"got {box!r:.60}",
            expected="4 numbers [x, y, w, h]",
            hint=_BOX_HINT,
        )
    return [float(v) for v in box]


def _spans(obj: dict[str, Any], path: Path, where: str) -> list[list[int]]:
    """MDETR's ``tokens_positive``: the caption's character spans ``[[begin, end], ...]`` naming this box."""
    spans = obj.get("tokens_positive", [])
    ok = isinstance(spans, list) and all(
        isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) for v in s) for s in spans)
    if not ok:
        raise DataFormatError(path, record=where, field="tokens_positive", problem=f"got {spans!r:.60}",
                              expected="a list of [begin, end] character offsets into the caption")
    return spans


def _read_refer(
    split: str, refs_path: Path, instances_path: Path, image_root: Path, text_field: str
) -> tuple[list[dict[str, Any]], set[str]]:
    refs = safe_load_pickle(refs_path, "REFER refs pickle (refs(unc).p)")
    if not isinstance(refs, list):
        raise DataFormatError(
            refs_path,
            record="top level",
            problem=f"got {type(refs).__name__}",
            expected="a list of ref dicts",
        )
    coco = read_json(instances_path, "COCO instances JSON (instances.json)", '{"images", "annotations"}')
    images = {
        get_field(im, "id", instances_path, f"images[{i}]", int): im
        for i, im in enumerate(get_field(coco, "images", instances_path, "top level", list))
    }
    anns = {
        get_field(a, "id", instances_path, f"annotations[{i}]", int): (i, a)
        for i, a in enumerate(get_field(coco, "annotations", instances_path, "top level", list))
    }
    records: list[dict[str, Any]] = []
    seen_splits: set[str] = set()
    for i, ref in enumerate(refs):
        where = f"refs[{i}]"
        ref_split = get_field(ref, "split", refs_path, where, str)
        seen_splits.add(ref_split)
        if ref_split != split:
            continue
        ann_id = get_field(ref, "ann_id", refs_path, where, int)
        image_id = get_field(ref, "image_id", refs_path, where, int)
        if ann_id not in anns:
            raise DataFormatError(
                instances_path,
                record=f"annotation id {ann_id} (from {refs_path.name} {where})",
                field="annotations",
                problem="not found",
                hint="use the instances.json shipped with the same REFER dataset",
            )
        if image_id not in images:
            raise DataFormatError(
                instances_path,
                record=f"image id {image_id} (from {refs_path.name} {where})",
                field="images",
                problem="not found",
            )
        ann_idx, ann = anns[ann_id]
        image = images[image_id]
        file_name = get_field(image, "file_name", instances_path, f"image id {image_id}", str)
        box = _box(ann, instances_path, f"annotations[{ann_idx}]")
        for j, sent in enumerate(get_field(ref, "sentences", refs_path, where, list)):
            s_where = f"{where}.sentences[{j}]"
            text = sent.get(text_field) if isinstance(sent, dict) else None
            if not isinstance(text, str):
                text = get_field(sent, "raw", refs_path, s_where, str, f"needs {text_field!r} or 'raw'")
            records.append(
                {
                    "image_path": str(image_root / file_name),
                    "text": text.strip(),
                    "box": box,
                    "split": ref_split,
                    "image_id": image_id,
                    "ref_id": ref.get("ref_id"),
                    "ann_id": ann_id,
                    "sent_id": sent.get("sent_id", j),
                    "category_id": ann.get("category_id"),
                    "width": image.get("width"),
                    "height": image.get("height"),
                }
            )
    return records, seen_splits


def _read_mdetr(split: str, path: Path, image_root: Path) -> list[dict[str, Any]]:
    data = read_json(
        path,
        f"MDETR referring-expression JSON (finetune_*_{split}.json)",
        '{"images": [{"id", "file_name", "caption"}], "annotations": [{"image_id", "bbox"}]}',
    )
    boxes: dict[int, list[list[float]]] = {}
    spans: dict[int, list[list[list[int]]]] = {}
    for i, a in enumerate(get_field(data, "annotations", path, "top level", list)):
        image_id = get_field(a, "image_id", path, f"annotations[{i}]", int)
        boxes.setdefault(image_id, []).append(_box(a, path, f"annotations[{i}]"))
        spans.setdefault(image_id, []).append(_spans(a, path, f"annotations[{i}]"))
    records = []
    for i, im in enumerate(get_field(data, "images", path, "top level", list)):
        where = f"images[{i}]"
        entry_id = get_field(im, "id", path, where, int)
        if entry_id not in boxes:
            raise DataFormatError(
                path,
                record=f"{where} (id {entry_id})",
                field="annotations",
                problem="no box annotation for this expression",
            )
        records.append(
            {
                "image_path": str(image_root / get_field(im, "file_name", path, where, str)),
                "text": get_field(im, "caption", path, where, str).strip(),
                "box": boxes[entry_id][0],
                "boxes": boxes[entry_id],
                "tokens_positive": spans[entry_id][0],
                "split": split,
                "image_id": im.get("original_img_id", entry_id),
                "expression_id": entry_id,
                "width": im.get("width"),
                "height": im.get("height"),
            }
        )
    return records


def load_refcoco(
    split: str,
    *,
    root: str | PathLike[str] | None = None,
    dataset: str = "refcoco",
    split_by: str | None = None,
    refs: str | PathLike[str] | None = None,
    instances: str | PathLike[str] | None = None,
    mdetr_json: str | PathLike[str] | None = None,
    image_root: str | PathLike[str] | None = None,
    text_field: str = "sent",
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RecordDataset:
    """Load one split of RefCOCO / RefCOCO+ / RefCOCOg, one record per referring sentence.

    Args:
        split: ``train``, ``val``, ``test``, ``testA`` or ``testB`` (as written in the data).
        root: REFER data folder (``root/<dataset>/refs(<split_by>).p``) or MDETR annotation folder.
        dataset: ``refcoco``, ``refcoco+`` or ``refcocog``.
        split_by: REFER split family; default ``unc`` (``umd`` for refcocog).
        refs, instances: explicit REFER files. mdetr_json: explicit MDETR file (selects that layout;
            it is also used when the REFER pickle is absent and ``root/finetune_<dataset>_<split>.json``
            exists).
        image_root: COCO train2014 image folder (default ``root/images``).
        text_field: sentence field of REFER (``sent``, the cleaned text, or ``raw``).

    Records: ``image_path``, ``text``, ``box`` ([x, y, w, h] pixels), ``split``, ``image_id``,
    ``width``, ``height``; REFER adds ``ref_id``, ``ann_id``, ``sent_id``, ``category_id``; MDETR adds
    ``boxes``, ``expression_id`` and ``tokens_positive`` (the referred box's caption spans, ``[]`` when absent).
    """
    if dataset not in REFCOCO_DATASETS:
        raise ValueError(f"unknown referring dataset {dataset!r}; expected one of {tuple(REFCOCO_DATASETS)}")
    base = Path(root) if root is not None else None
    img_root = Path(image_root) if image_root is not None else (base / "images" if base else Path("."))
    split_by = split_by or REFCOCO_DATASETS[dataset]
    refs_path = Path(refs) if refs is not None else (base / dataset / f"refs({split_by}).p" if base else None)
    mdetr_path = Path(mdetr_json) if mdetr_json is not None else None
    if mdetr_path is None and refs is None and base is not None:
        candidate = base / f"finetune_{dataset}_{split}.json"
        if candidate.is_file() and not (refs_path and refs_path.is_file()):
            mdetr_path = candidate
    if mdetr_path is not None:
        records = _read_mdetr(split, mdetr_path, img_root)
        source = mdetr_path
    else:
        if refs_path is None:
            raise ValueError("load_refcoco needs root=, refs= or mdetr_json=")
        if not refs_path.is_file():
            raise DataFileNotFoundError(
                refs_path, f"REFER refs pickle for {dataset}", "download the REFER data or pass mdetr_json="
            )
        inst_path = Path(instances) if instances is not None else refs_path.parent / "instances.json"
        records, seen = _read_refer(split, refs_path, inst_path, img_root, text_field)
        source = refs_path
        if not records:
            raise ValueError(f"{refs_path}: no refs with split {split!r}; the file has {sorted(seen)}")
    return RecordDataset(
        records,
        transform=transform,
        load_images=load_images,
        name=dataset,
        split=split,
        meta={"source": str(source)},
    )
