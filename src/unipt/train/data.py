"""The run's datasets: train / eval / test splits by name, size limits, and task vocabularies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset, Subset

from unipt.batch import TaskLabels
from unipt.train.config import RunConfig
from unipt.train.labels import (
    LabelVocabulary,
    base_dataset,
    describe_split,
    load_split_records,
    training_vocabulary,
)
from unipt.train.multitask import task_labels


@dataclass
class RunData:
    train: Dataset
    eval: Dataset
    test: Dataset | None = None
    answer_index: dict[str, int] | None = None
    task_options: dict[str, Any] = field(default_factory=dict)  # with several tasks: {task: options}
    labels: LabelVocabulary | None = None  # classification: the training split's classes
    augment: dict[str, Any] | None = None
    task_labels: TaskLabels = field(default_factory=dict)  # with several tasks: {task: (field, vocabulary)}


def loader_options(options: dict[str, Any]) -> dict[str, Any]:
    """``data.options`` minus ``augment`` (the training-time augmentation spec, not a loader argument)."""
    return {k: v for k, v in options.items() if k != "augment"}


ROLES = ("train", "eval", "test")


def split_name(config: RunConfig, role: str) -> str | None:
    return {"train": config.data.train_split, "eval": config.data.eval_split, "test": config.data.test_split}[role]


def classifies_labels(config: RunConfig) -> bool:
    """Whether the run classifies the records' ``label`` (whose class vocabulary the training split fixes)."""
    if config.tasks:
        return any(t.name == "classification" and t.label_field == "label" for t in config.tasks.values())
    return config.task.name == "classification"


def run_vocabulary(config: RunConfig, train: Dataset | None = None) -> LabelVocabulary | None:
    """The class vocabulary of a classification run, from its (full, unlimited) training split."""
    if not classifies_labels(config):
        return None
    data = config.data
    if train is None:
        train = load_split_records(data.dataset, data.train_split, loader_options(data.options), None)
    num_classes = config.task.options.get("num_classes")
    return training_vocabulary(train, data.train_split, int(num_classes) if num_classes is not None else None)


def load_split(config: RunConfig, role: str, vocabulary: LabelVocabulary | None = None) -> Dataset:
    """The records of one run split (``train`` / ``eval`` / ``test``) with the config's size limit.

    For classification, labels are numbered by ``vocabulary`` (default: the training split's), so every
    split agrees with training; a split without records is refused.
    """
    data = config.data
    name = split_name(config, role)
    if name is None:
        raise ValueError(f"the run config has no {role} split (data.{role}_split is null)")
    if vocabulary is None and role != "train":
        vocabulary = run_vocabulary(config)
    dataset = load_split_records(data.dataset, name, loader_options(data.options), vocabulary)
    if len(dataset) == 0:
        raise ValueError(f"{describe_split(dataset, role, name)} has no records (e.g. a CSV with only its header); "
                         f"add records, or point loader_options(data.options) / data.{role}_split at the right file")
    return _limit(dataset, data.limit_train if role == "train" else data.limit_eval)


def load_run_data(config: RunConfig, labels: LabelVocabulary | None = None) -> RunData:
    """Load the splits named in ``config.data``; build what the task needs from the training split
    (answer vocabulary for VQA/GQA, class vocabulary for classification, applied to every split).

    Args:
        labels: a saved run's class vocabulary (``labels.json``); default: the training split's.
    """
    data = config.data
    train = load_split(config, "train", labels)
    if labels is None and classifies_labels(config):
        labels = run_vocabulary(config, base_dataset(train))
    evaluation = load_split(config, "eval", labels)
    test = load_split(config, "test", labels) if data.test_split else None
    run = RunData(train, evaluation, test, labels=labels, augment=data.options.get("augment"))
    records = _records(train)
    if config.tasks:
        others = {"eval": _records(evaluation), **({"test": _records(test)} if test is not None else {})}
        classes = labels.num_classes if labels is not None else None
        run.task_labels, run.task_options = task_labels(config, records, classes, others)
        return run
    task = config.task.name
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
    elif task == "classification" and "num_classes" not in config.task.options and labels is not None:
        run.task_options["num_classes"] = labels.num_classes
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
