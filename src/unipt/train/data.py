"""The run's datasets: train / eval / test splits by name, size limits, and task vocabularies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset, Subset

from unipt.data import load_dataset
from unipt.train.config import RunConfig


@dataclass
class RunData:
    train: Dataset
    eval: Dataset
    test: Dataset | None = None
    answer_index: dict[str, int] | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] | None = None


def loader_options(options: dict[str, Any]) -> dict[str, Any]:
    """``data.options`` minus ``augment`` (the training-time augmentation spec, not a loader argument)."""
    return {k: v for k, v in options.items() if k != "augment"}


def load_run_data(config: RunConfig) -> RunData:
    """Load the splits named in ``config.data``; build what the task needs from the training split
    (answer vocabulary for VQA/GQA, number of classes for classification)."""
    data = config.data
    options = loader_options(data.options)
    train = _limit(load_dataset(data.dataset, data.train_split, **options), data.limit_train)
    evaluation = _limit(load_dataset(data.dataset, data.eval_split, **options), data.limit_eval)
    test = None
    if data.test_split:
        test = _limit(load_dataset(data.dataset, data.test_split, **options), data.limit_eval)
    run = RunData(train, evaluation, test, augment=data.options.get("augment"))
    task = config.task.name
    records = _records(train)
    if task in ("vqa", "gqa"):
        counts: dict[str, int] = {}
        for record in records:
            for answer in record.get("answers") or {record.get("answer"): 1.0}:
                if answer:
                    counts[answer] = counts.get(answer, 0) + 1
        min_count = int(config.task.options.get("answer_min_count", 1))
        answers = sorted((a for a, n in counts.items() if n >= min_count), key=lambda a: (-counts[a], a))
        run.answer_index = {a: i for i, a in enumerate(answers)}
        run.task_options["num_answers"] = len(answers)
        run.task_options["answers"] = answers  # row order of the answer head (for answer-table surgery)
    elif task == "classification" and "num_classes" not in config.task.options:
        names = _meta(train).get("class_names")
        run.task_options["num_classes"] = len(names) if names else 1 + max(int(r["label"]) for r in records)
    return run


def _limit(dataset: Dataset, limit: int | None) -> Dataset:
    if limit is None or limit >= len(dataset):
        return dataset
    return Subset(dataset, range(limit))


def _records(dataset: Dataset) -> list[dict[str, Any]]:
    """Raw records without opening images (for vocabularies and label counts)."""
    if isinstance(dataset, Subset):
        base = _records(dataset.dataset)
        return [base[i] for i in dataset.indices]
    return list(getattr(dataset, "records", []))


def _meta(dataset: Dataset) -> dict[str, Any]:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "meta", {})
