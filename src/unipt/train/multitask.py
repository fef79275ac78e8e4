"""Several tasks over one dataset (``tasks:`` in a run config): each task's labels and sizes from the
training split. The towers and heads are built by :func:`unipt.train.system.build_system`."""

from __future__ import annotations

from typing import Any

from unipt.batch import TaskLabels
from unipt.train.config import RunConfig

# Tasks whose data needs are met per record (an answer vocabulary, as VQA needs, is per run for now).
MULTITASK_TASKS = ("classification", "retrieval", "video_retrieval", "grounding")


def task_labels(config: RunConfig, records: list[dict[str, Any]], label_classes: int | None = None,
                others: dict[str, list[dict[str, Any]]] | None = None) -> tuple[TaskLabels, dict[str, dict[str, Any]]]:
    """Each task's label field and vocabulary (class names sorted, from the training ``records``) and
    the options the data decides (``num_classes`` of a classification task; ``label_classes``: the
    training split's classes of the records' ``label``, see :mod:`unipt.train.labels`).

    Raises:
        ValueError: a label of another split (``others``: ``{split: records}``) is not among the training
            split's classes; checked here, before any training.
    """
    labels: TaskLabels = {}
    options: dict[str, dict[str, Any]] = {}
    for name, task in config.tasks.items():
        if task.name not in MULTITASK_TASKS:
            raise ValueError(f"tasks.{name}: {task.name!r} cannot be trained with other tasks yet; "
                             f"use one of {list(MULTITASK_TASKS)} (or train it alone with 'task:')")
        options[name] = {}
        field = task.label_field
        vocabulary = None
        if field != "label" and records:
            missing = [i for i, r in enumerate(records) if field not in r]
            if missing:
                raise KeyError(f"tasks.{name}.label_field={field!r}: training record {missing[0]} has no such "
                               f"field; records have {sorted(records[missing[0]])}")
            values = [r[field] for r in records]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                vocabulary = {v: i for i, v in enumerate(sorted({str(v) for v in values}))}
        labels[name] = (field, vocabulary)
        for split, rows in (others or {}).items():
            for i, row in enumerate(rows):
                if vocabulary is not None and str(row.get(field)) not in vocabulary:
                    raise ValueError(f"tasks.{name}: the {split} split's record {i} has {field}={row.get(field)!r}, "
                                     f"which the training split never has ({len(vocabulary)} classes); a class the "
                                     "model never saw cannot be predicted: fix the data or the splits")
        if task.name == "classification" and "num_classes" not in task.options:
            if field == "label":
                options[name]["num_classes"] = label_classes or 1 + max(int(r["label"]) for r in records)
            else:
                options[name]["num_classes"] = len(vocabulary) if vocabulary else 1 + max(r[field] for r in records)
    return labels, options
