"""A classification run's class vocabulary: fixed once from the training split, applied to every other
split and to ``unipt predict``, and saved with the run (``labels.json``).

Each CSV / JSONL file numbers its own string labels, so a test file holding only some of the classes
would otherwise be scored against shifted ids. Here the training split decides; another split is loaded
with the training vocabulary (loaders that take ``label_names`` / ``class_names`` get it, others are
re-mapped by name), and a label the training split never had is an error before training starts that
names the file, the record and the label.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, Subset

from unipt.data import load_dataset
from unipt.data.errors import DataFormatError
from unipt.data.registry import DATASETS

LABELS_FILE = "labels.json"
# Loader keyword that fixes the class list, by preference (text tables, image folders).
VOCABULARY_KEYWORDS = ("label_names", "class_names")


@dataclass(frozen=True)
class LabelVocabulary:
    """``class_names[i]`` is class ``i``; ``class_names`` is None for integer labels ``0..num_classes-1``."""

    num_classes: int
    class_names: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes,
                "class_names": list(self.class_names) if self.class_names is not None else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelVocabulary:
        names = data.get("class_names")
        return cls(int(data["num_classes"]), tuple(names) if names is not None else None)


def base_dataset(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def describe_split(dataset: Dataset, role: str, split: str) -> str:
    """``the eval split ('val', /data/val.csv)``: how errors name a split."""
    source = getattr(base_dataset(dataset), "meta", {}).get("source")
    return f"the {role} split ({split!r}" + (f", {source})" if source else ")")


def load_split_records(dataset_name: str, split: str, options: dict[str, Any],
                       vocabulary: LabelVocabulary | None) -> Dataset:
    """Load one split; with a vocabulary, its labels are numbered by it (or it is an error)."""
    keyword = _vocabulary_keyword(dataset_name, options)
    if vocabulary is None or vocabulary.class_names is None or keyword is None:
        dataset = load_dataset(dataset_name, split, **options)
    else:
        try:
            dataset = load_dataset(dataset_name, split, **{**options, keyword: list(vocabulary.class_names)})
        except DataFormatError as err:
            if not (err.problem or "").startswith("unknown label"):
                raise
            label = err.problem.removeprefix("unknown label ")
            raise DataFormatError(err.path, record=err.record, field=err.field,
                                  problem=f"label {label} does not occur in the training split",
                                  expected=err.expected, hint=_UNSEEN_HINT) from err
    if vocabulary is not None:
        apply_vocabulary(dataset, vocabulary, split)
    return dataset


def _vocabulary_keyword(dataset_name: str, options: dict[str, Any]) -> str | None:
    """The loader's class-list keyword, unless the user already set one in ``data.options``."""
    entry = DATASETS.get(dataset_name.strip().lower().replace("-", "_"))
    if entry is None:
        return None
    params = inspect.signature(entry[0]).parameters
    for keyword in VOCABULARY_KEYWORDS:
        if keyword in params:
            return None if options.get(keyword) is not None else keyword
    return None


def apply_vocabulary(dataset: Dataset, vocabulary: LabelVocabulary, split: str) -> None:
    """Renumber ``dataset``'s labels (in place) to ``vocabulary``; an unknown label is a DataFormatError."""
    base = base_dataset(dataset)
    records = getattr(base, "records", None)
    if not records or "label" not in records[0]:
        return
    meta = getattr(base, "meta", {})
    source = meta.get("source") or f"split {split!r}"
    own = meta.get("class_names")
    wanted = list(vocabulary.class_names) if vocabulary.class_names is not None else None
    if own is not None and wanted is not None and list(own) != wanted:
        index = {name: i for i, name in enumerate(wanted)}
        for i, record in enumerate(records):
            name = own[int(record["label"])]
            if name not in index:
                raise DataFormatError(source, record=_where(record, i), field="label",
                                      problem=f"label {name!r} does not occur in the training split",
                                      expected=f"one of {wanted[:10]}", hint=_UNSEEN_HINT)
            record["label"] = index[name]
        meta["class_names"] = wanted
        return
    for i, record in enumerate(records):
        label = int(record["label"])
        if not 0 <= label < vocabulary.num_classes:
            shown = own[label] if own is not None and 0 <= label < len(own) else label
            raise DataFormatError(source, record=_where(record, i), field="label",
                                  problem=f"label {shown!r} does not occur in the training split",
                                  expected=f"a class id 0..{vocabulary.num_classes - 1}", hint=_UNSEEN_HINT)


_UNSEEN_HINT = "the classifier only knows the training split's classes: fix the label or add it to the training data"


def _where(record: dict[str, Any], index: int) -> str:
    path = record.get("image_path")
    return f"{index} ({path})" if path else str(index)


def training_vocabulary(train: Dataset, split: str, num_classes: int | None = None) -> LabelVocabulary:
    """The vocabulary the training split defines (its class names, else its integer labels).

    Raises:
        ValueError: fewer than two classes (a classifier cannot learn anything from one).
    """
    base = base_dataset(train)
    names = getattr(base, "meta", {}).get("class_names")
    labels = [int(r["label"]) for r in getattr(base, "records", []) if "label" in r]
    where = describe_split(train, "training", split)
    if names is not None:
        vocabulary = LabelVocabulary(len(names), tuple(names))
        present = {names[i] for i in labels if 0 <= i < len(names)}
    else:
        vocabulary = LabelVocabulary(1 + max(labels) if labels else 0)
        present = set(labels)
    if num_classes is not None:
        if num_classes < vocabulary.num_classes:
            raise ValueError(f"task.options.num_classes={num_classes} but {where} has labels up to "
                             f"{vocabulary.num_classes - 1}; raise num_classes or drop it to count the classes")
        vocabulary = LabelVocabulary(num_classes, vocabulary.class_names)
    if len(present) < 2:
        found = f"only the class {sorted(map(str, present))[0]!r}" if present else "no labelled records"
        raise ValueError(f"{where} has {found}; a classifier needs at least two classes (an image folder needs "
                         "one sub-folder per class, a table at least two distinct labels)")
    return vocabulary


def save_vocabulary(run_dir: str | os.PathLike[str], vocabulary: LabelVocabulary) -> None:
    path = Path(run_dir) / LABELS_FILE
    tmp = path.with_name(f".{LABELS_FILE}.tmp")
    tmp.write_text(json.dumps(vocabulary.to_dict(), indent=2))
    os.replace(tmp, path)


def read_vocabulary(run_dir: str | os.PathLike[str]) -> LabelVocabulary | None:
    """The vocabulary a run saved, or None (a run of another task, or made before labels.json existed)."""
    path = Path(run_dir) / LABELS_FILE
    if not path.is_file():
        return None
    try:
        return LabelVocabulary.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is damaged ({err}); delete it to rebuild the class list from the training "
                         "split") from err
