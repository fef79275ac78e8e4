"""Text classification tables: CSV with a header, or JSON lines, each row a text and a label.

String labels are numbered with a stable sorted vocabulary (or a given ``label_names`` list, which you
should pass for validation / test files so every split shares the training vocabulary).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.base import RecordDataset
from unipt.data.io import get_field, read_csv_rows, read_jsonl
from unipt.data.labels import encode_labels

__all__ = ["load_text_csv", "load_text_jsonl"]


def _default_path(
    path: str | PathLike[str] | None, root: str | PathLike[str] | None, split: str, ext: str
) -> Path:
    if path is not None:
        return Path(path)
    if root is None:
        raise ValueError(f"pass path= (a .{ext} file) or root= (a folder with <split>.{ext})")
    return Path(root) / f"{split}.{ext}"


def _build(
    texts: list[str],
    raw_labels: list[Any] | None,
    where: list[str],
    path: Path,
    field: str,
    label_names: Sequence[str] | None,
    name: str,
    split: str,
    extras: list[dict[str, Any]] | None = None,
) -> RecordDataset:
    records: list[dict[str, Any]] = [{"text": t, **(e or {})} for t, e in zip(texts, extras or [None] * len(texts),
                                                                        strict=True)]
    class_names = None
    if raw_labels is not None:
        labels, class_names = encode_labels(raw_labels, where, path, field, label_names)
        for rec, label in zip(records, labels, strict=True):
            rec["label"] = label
    return RecordDataset(
        records,
        load_images=False,
        name=name,
        split=split,
        meta={"source": str(path), "class_names": class_names},
    )


def load_text_csv(
    split: str,
    *,
    path: str | PathLike[str] | None = None,
    root: str | PathLike[str] | None = None,
    text_column: str = "text",
    label_column: str | None = "label",
    delimiter: str = ",",
    label_names: Sequence[str] | None = None,
    extra_columns: Sequence[str] = (),
) -> RecordDataset:
    """Load ``text,label`` rows from a CSV with a header (``path``, or ``root/<split>.csv``).

    Records: ``text``, ``label`` (int; absent when ``label_column`` is None) and each of ``extra_columns``
    as written (e.g. the labels of other tasks). ``meta["class_names"]`` holds the label vocabulary when
    labels were names.
    """
    p = _default_path(path, root, split, "csv")
    required = [text_column] + ([label_column] if label_column else []) + list(extra_columns)
    texts: list[str] = []
    labels: list[Any] = []
    where: list[str] = []
    extras: list[dict[str, Any]] = []
    for line, row in read_csv_rows(p, "text CSV file", required, delimiter=delimiter):
        loc = f"line {line}"
        texts.append(get_field(row, text_column, p, loc, str))
        if label_column:
            labels.append((row.get(label_column) or "").strip())
        extras.append({c: get_field(row, c, p, loc, str).strip() for c in extra_columns})
        where.append(loc)
    return _build(
        texts, labels if label_column else None, where, p, label_column or "", label_names, "text_csv", split,
        extras,
    )


def load_text_jsonl(
    split: str,
    *,
    path: str | PathLike[str] | None = None,
    root: str | PathLike[str] | None = None,
    text_field: str = "text",
    label_field: str | None = "label",
    label_names: Sequence[str] | None = None,
    extra_fields: Sequence[str] = (),
) -> RecordDataset:
    """Load ``{"text": ..., "label": ...}`` lines (``path``, or ``root/<split>.jsonl``).

    Labels may be ints or class names. Records: ``text``, ``label`` and each of ``extra_fields`` (ints or
    strings, e.g. the labels of other tasks).
    """
    p = _default_path(path, root, split, "jsonl")
    texts: list[str] = []
    labels: list[Any] = []
    where: list[str] = []
    extras: list[dict[str, Any]] = []
    for line, obj in read_jsonl(p, "text JSONL file", f'{{"{text_field}": str, "{label_field}": int|str}}'):
        loc = f"line {line}"
        texts.append(get_field(obj, text_field, p, loc, str))
        if label_field:
            labels.append(get_field(obj, label_field, p, loc, (int, str)))
        extras.append({f: get_field(obj, f, p, loc, (int, str)) for f in extra_fields})
        where.append(loc)
    return _build(
        texts, labels if label_field else None, where, p, label_field or "", label_names, "text_jsonl", split,
        extras,
    )
