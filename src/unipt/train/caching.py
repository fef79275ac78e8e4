"""The activation cache of a run config: build it (:func:`build_cache`), estimate it (:func:`plan_cache`),
and train from it (:func:`use_cache`: swap the run's splits for their cached taps, after checking the cache
fits the run). The store itself is :mod:`unipt.cache`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from accelerate import PartialState
from torch.utils.data import Dataset

from unipt.batch import Batch
from unipt.cache.build import write_cache
from unipt.cache.collate import CacheCollator
from unipt.cache.dataset import CachedDataset
from unipt.cache.errors import CacheError
from unipt.cache.identity import check_cacheable, tower_identity
from unipt.cache.manifest import MANIFEST, ROLES
from unipt.cache.plan import estimate_cache
from unipt.process import needs_cpu_flag
from unipt.train.batching import Collator
from unipt.train.cache_source import CacheSource, split_fingerprint
from unipt.train.config import RunConfig
from unipt.train.data import RunData
from unipt.train.system import AdaptedSystem, Tower

Collate = Callable[[Sequence[dict[str, Any]]], Batch]


def build_cache(config: RunConfig, out: str | os.PathLike[str], split: str = "train", *,
                towers: dict[str, Tower] | None = None, dataset: Dataset | None = None, dtype: str = "fp32",
                padding: bool = True, batch_size: int | None = None, records_per_shard: int | None = None,
                shard_mb: float = 256.0, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Cache the taps of every UniPT / frozen tower of ``config`` over one split, into ``out/<split>/``.

    Args:
        config: the run config (towers, data); its ``train.num_workers`` loads records.
        out: cache root; the split goes to ``out/train``, ``out/eval`` or ``out/test``.
        split: ``train`` / ``eval`` / ``test`` (or the split's own name, e.g. ``val``).
        towers: already built towers (default: built from ``config.towers``).
        dataset: the split's records (default: loaded as the trainer does, with the size limit).
        batch_size: build batch size (default ``train.eval_batch_size`` or ``train.batch_size``).
        dtype, padding, records_per_shard, shard_mb, overwrite, progress: see
            :func:`unipt.cache.build.write_cache`.

    Returns:
        the final manifest (``complete`` is True once every shard exists).
    """
    source = CacheSource.from_config(config, split, towers, dataset)
    size = batch_size or config.train.eval_batch_size or config.train.batch_size
    return write_cache(source, out, batch_size=size, dtype=dtype, padding=padding,
                       records_per_shard=records_per_shard, shard_mb=shard_mb, overwrite=overwrite, progress=progress)


def plan_cache(config: RunConfig, split: str = "train", *, towers: dict[str, Tower] | None = None,
               dtype: str = "fp32", padding: bool = True, batch_size: int | None = None) -> dict[str, Any]:
    """Estimated size and build time of ``unipt cache build`` for one split (see
    :func:`unipt.cache.plan.estimate_cache`)."""
    source = CacheSource.from_config(config, split, towers)
    size = batch_size or config.train.eval_batch_size or config.train.batch_size
    return estimate_cache(source, batch_size=size, dtype=dtype, padding=padding)


def system_identity(config: RunConfig, system: AdaptedSystem) -> dict[str, dict[str, Any]]:
    """The identity of every tower of a built system, as a cache manifest stores it."""
    return {name: tower_identity(system.tower_info[name][0], system.tower_info[name][1], module)
            for name, module in system.towers.items()}


def use_cache(config: RunConfig, system: AdaptedSystem, data: RunData, cache_dir: str | os.PathLike[str] | None = None,
              verify: str = "lazy") -> tuple[RunData, Collate]:
    """Replace ``data``'s splits by the cache at ``cache_dir`` (default ``config.train.cache_dir``).

    The training split must be cached; an eval / test split without a cache folder is read live (with a
    note). Each cached split is checked against the run: towers (backbone, fingerprint, taps,
    preprocessing) and dataset (name, split, options, records) must match, else
    :class:`~unipt.cache.errors.CacheMismatch` lists the differences.

    Returns:
        (the run data with cached splits, a collate that handles both cached and live records).
    """
    root = Path(cache_dir or config.train.cache_dir)
    towers = {n: (system.tower_info[n][0], system.tower_info[n][1], m, config.towers[n].method)
              for n, m in system.towers.items()}
    check_cacheable(towers, data.train, config.data.options)
    identity = system_identity(config, system)
    replaced: dict[str, Any] = {}
    live = []
    for role in ROLES:
        dataset = getattr(data, role)
        if dataset is None:
            continue
        folder = root / role
        if not (folder / MANIFEST).is_file():
            if role == "train":
                raise CacheError(f"no activation cache for the training split in {root} ({folder / MANIFEST} is "
                                 "missing); build it with `unipt cache build CONFIG --out DIR --split train`")
            live.append(role)
            continue
        cached = CachedDataset(folder, verify=verify)
        cached.check({"towers": identity, "dataset": split_fingerprint(config, role, dataset)})
        replaced[role] = cached
    if live and PartialState(cpu=needs_cpu_flag()).is_main_process:
        print(f"activation cache {root}: no cache for {live}; those splits run the backbone")
    live_collate = Collator(system.tower_info, data.answer_index, data.task_labels)
    collate = RoutingCollator(CacheCollator(data.answer_index, data.task_labels), live_collate)
    return dataclasses.replace(data, **replaced), collate


class RoutingCollator:
    """Cached records go to ``cached``, raw records (a split without a cache) to ``live``."""

    def __init__(self, cached: Collate, live: Collate):
        self.cached, self.live = cached, live

    def __call__(self, records: Sequence[dict[str, Any]]) -> Batch:
        # A CachedDataset record is {"taps", "targets", "index"}; raw records never carry "taps".
        return self.cached(records) if "taps" in records[0] else self.live(records)
