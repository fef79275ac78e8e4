"""A run config's cache source: its UniPT / frozen towers and one of its splits
(a :class:`~unipt.cache.source.TapSource`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from unipt.batch import TowerBatch
from unipt.cache.identity import check_cacheable, dataset_fingerprint, record_targets, tower_identity
from unipt.cache.manifest import ROLES
from unipt.taps import Taps
from unipt.train.batching import Collator
from unipt.train.config import RunConfig
from unipt.train.data import load_split as load_run_split
from unipt.train.system import Tower, build_tower


def resolve_role(config: RunConfig, split: str) -> str:
    """``train`` / ``eval`` / ``test``, also accepting the split's own name (``val`` -> ``eval``)."""
    if split in ROLES:
        return split
    names = {"train": config.data.train_split, "eval": config.data.eval_split, "test": config.data.test_split}
    for role, name in names.items():
        if name == split:
            return role
    raise ValueError(f"unknown split {split!r}; use train, eval or test (this config: {names})")


def split_name(config: RunConfig, role: str) -> str | None:
    return {"train": config.data.train_split, "eval": config.data.eval_split, "test": config.data.test_split}[role]


def load_split(config: RunConfig, role: str) -> Dataset:
    """The records of one run split, exactly as :func:`unipt.train.data.load_split` gives them to training
    (size limit, the training split's class vocabulary)."""
    return load_run_split(config, role)


def split_fingerprint(config: RunConfig, role: str, dataset: Dataset) -> dict[str, Any]:
    return dataset_fingerprint(dataset, config.data.dataset, split_name(config, role) or role, config.data.options)


@dataclass
class CacheSource:
    """The towers to run (``{name: Tower}``), their identities, and one split's records."""

    config: RunConfig
    role: str
    towers: dict[str, Tower]
    dataset: Dataset

    @classmethod
    def from_config(cls, config: RunConfig, split: str = "train", towers: dict[str, Tower] | None = None,
                    dataset: Dataset | None = None) -> CacheSource:
        """Load the towers (unless given) and the split; refuse what a cache cannot reproduce."""
        role = resolve_role(config, split)
        towers = towers or {name: build_tower(name, spec) for name, spec in config.towers.items()}
        check_cacheable({n: (t.field, t.backbone, t.module, config.towers[n].method) for n, t in towers.items()},
                        dataset, config.data.options)
        if dataset is None:
            dataset = load_split(config, role)
            check_cacheable({}, dataset, {})  # its image transform
        for tower in towers.values():
            tower.module.eval()
        return cls(config, role, towers, dataset)

    def identity(self) -> dict[str, Any]:
        towers = {n: tower_identity(t.field, t.backbone, t.module)
                  for n, t in self.towers.items()}
        return {"towers": towers, "dataset": split_fingerprint(self.config, self.role, self.dataset)}

    @property
    def num_workers(self) -> int:
        return self.config.train.num_workers

    def collate(self) -> BuildCollate:
        labels = tuple(sorted({t.label_field for t in self.config.tasks.values()} - {"label"}))
        return BuildCollate(Collator({n: (t.field, t.backbone) for n, t in self.towers.items()}), labels)

    def tap(self, batch: dict[str, TowerBatch]) -> dict[str, Taps]:
        """Run every tower's frozen backbone on one collated batch: ``{tower: Taps}``."""
        with torch.no_grad():
            return {name: tower.module.tap(**batch[name].inputs) for name, tower in self.towers.items()}


class BuildCollate:
    """Collate for building: the backbone inputs of every tower + each record's targets (picklable)."""

    def __init__(self, collator: Collator, label_fields: tuple[str, ...] = ()):
        self.collator, self.label_fields = collator, label_fields

    def __call__(self, records: Sequence[dict[str, Any]]) -> tuple[dict[str, TowerBatch], list[dict[str, Any]]]:
        return self.collator.tower_inputs(records), [record_targets(r, self.label_fields) for r in records]
