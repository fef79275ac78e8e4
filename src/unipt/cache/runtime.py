"""Train from a cache: swap a run's splits for their cached taps, after checking the cache fits the run."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accelerate import PartialState

from unipt.cache.collate import CacheCollator, RoutingCollator
from unipt.cache.dataset import CachedDataset
from unipt.cache.errors import CacheError
from unipt.cache.identity import check_cacheable, tower_identity
from unipt.cache.manifest import MANIFEST, ROLES
from unipt.cache.source import split_fingerprint
from unipt.train.batching import Collator
from unipt.train.config import RunConfig
from unipt.train.data import RunData
from unipt.train.loop import needs_cpu_flag
from unipt.train.system import AdaptedSystem


def system_identity(config: RunConfig, system: AdaptedSystem) -> dict[str, dict[str, Any]]:
    """The identity of every tower of a built system, as a cache manifest stores it."""
    return {name: tower_identity(name, system.tower_info[name][0], system.tower_info[name][1], module,
                                 config.towers[name].method)
            for name, module in system.towers.items()}


def use_cache(config: RunConfig, system: AdaptedSystem, data: RunData, cache_dir: str | os.PathLike[str] | None = None,
              verify: str = "lazy") -> tuple[RunData, Callable[[list[dict[str, Any]]], dict[str, Any]]]:
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
    live_collate = Collator(system.tower_info, data.answer_index)
    collate = RoutingCollator(CacheCollator(data.answer_index), live_collate)
    return dataclasses.replace(data, **replaced), collate
