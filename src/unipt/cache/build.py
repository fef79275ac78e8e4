"""Write an activation cache: run the frozen backbones once over a split and store the taps in shards.

Shard ``i`` always holds records ``[i * R, (i + 1) * R)`` (``R`` = records per shard, fixed when the build
starts), so a build can stop anywhere and resume: the manifest lists the finished shards (with their
sha256) and only the others are built again. Under ``torchrun`` / ``accelerate launch`` rank ``r`` builds
the shards ``i`` with ``i % world == r`` and records them in ``progress-rank<r>.json``; rank 0 merges
everything into ``manifest.json`` after a barrier.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from accelerate import PartialState
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from unipt.cache.errors import CacheMismatch
from unipt.cache.identity import differences
from unipt.cache.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    merge_shards,
    progress_files,
    read_manifest,
    read_progress,
    write_json,
)
from unipt.cache.plan import probe_batch
from unipt.cache.shards import DTYPES, concat_packs, layout_of, pack_taps, shard_name, write_shard
from unipt.cache.source import TapSource
from unipt.process import needs_cpu_flag
from unipt.version import __version__


def write_cache(source: TapSource, out: str | os.PathLike[str], *, batch_size: int, dtype: str = "fp32",
                padding: bool = True, records_per_shard: int | None = None, shard_mb: float = 256.0,
                overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Cache the taps of ``source`` (one split of some towers) into ``out/<source.role>/``.

    Args:
        source: what to run and on which records (:class:`~unipt.cache.source.TapSource`).
        out: cache root; the split goes to ``out/train``, ``out/eval`` or ``out/test``.
        batch_size: build batch size.
        dtype: storage dtype ``fp32`` / ``fp16`` / ``bf16`` (taps are read back as fp32).
        padding: keep each record's padded rows (as its build batch had them); False stores real tokens only.
        records_per_shard: records per shard (default: about ``shard_mb`` MB, from a probe batch).
        overwrite: replace a cache built for something else instead of refusing it.

    Returns:
        the final manifest (``complete`` is True once every shard exists).
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown cache dtype {dtype!r}; use one of {sorted(DTYPES)}")
    state = PartialState(cpu=needs_cpu_flag())
    started = time.perf_counter()
    folder = Path(out) / source.role
    storage = {"dtype": dtype, "padding": padding, "batch_size": batch_size}
    identity = source.identity()
    existing = _existing(folder, identity, storage, records_per_shard, overwrite)
    if state.is_main_process:
        _prepare(folder, source, identity, storage, existing, records_per_shard, shard_mb)
    state.wait_for_everyone()
    manifest = read_manifest(folder)
    # Only what rank 0 recorded before the barrier: progress files written since (by a faster rank) must not
    # change this rank's share, or two ranks would split the remaining shards differently.
    done = {int(e["index"]) for e in manifest["shards"]}
    todo = [i for i in range(manifest["num_shards"]) if i not in done]
    mine = todo[state.process_index::state.num_processes]
    _build_shards(source, folder, manifest, mine, state, progress)
    state.wait_for_everyone()
    if state.is_main_process:
        manifest = _finish(folder, state.num_processes, time.perf_counter() - started)
    state.wait_for_everyone()
    return read_manifest(folder)


def _existing(folder: Path, identity: dict[str, Any], storage: dict[str, Any], records_per_shard: int | None,
              overwrite: bool) -> dict[str, Any] | None:
    """The manifest of an earlier (maybe interrupted) build to resume, or None to start afresh.

    Every rank checks (read-only), so every rank refuses a mismatching cache in the same way."""
    if not (folder / MANIFEST).is_file():
        return None
    old = read_manifest(folder)
    wanted = {"identity": identity, "storage": storage}
    if records_per_shard is not None:
        wanted["storage"] = {**storage, "records_per_shard": records_per_shard}
    stored = {"identity": old["identity"], "storage": {k: old["storage"].get(k) for k in wanted["storage"]}}
    diffs = differences(stored, wanted)
    if not diffs:
        return old
    if overwrite:
        return None
    raise CacheMismatch(str(folder), diffs + ["(pass --overwrite to replace this cache)"])


def _prepare(folder: Path, source: TapSource, identity: dict[str, Any], storage: dict[str, Any],
             existing: dict[str, Any] | None, records_per_shard: int | None, shard_mb: float) -> None:
    """Rank 0: write the manifest skeleton (new build) or fold an interrupted build's progress into it."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # half-written files of a killed build
        stale.unlink(missing_ok=True)
    if existing is None:
        for old in [*folder.glob("shard-*.safetensors"), *progress_files(folder), folder / MANIFEST]:
            old.unlink(missing_ok=True)
        probe = probe_batch(source, storage["batch_size"], storage["dtype"], storage["padding"], repeats=1)
        if records_per_shard is None:
            batches = max(1, int(shard_mb * 2**20 / probe.bytes_per_record) // storage["batch_size"])
            records_per_shard = batches * storage["batch_size"]
        records = len(source.dataset)
        existing = {
            "format_version": FORMAT_VERSION,
            "unipt_version": __version__,
            "complete": False,
            "split": source.role,
            "identity": identity,
            "storage": {**storage, "records_per_shard": records_per_shard},
            "layout": {name: layout_of(name, probe.pack, storage["padding"]) for name in source.towers},
            "num_records": records,
            "num_shards": math.ceil(records / records_per_shard),
            "shards": [],
            "build": {},
        }
    existing["shards"] = [e for e in merge_shards(existing["shards"], read_progress(folder)) if _intact(folder, e)]
    existing["complete"] = len(existing["shards"]) == existing["num_shards"]
    write_json(folder / MANIFEST, existing)
    for path in progress_files(folder):
        path.unlink()


def _intact(folder: Path, entry: dict[str, Any]) -> bool:
    """A finished shard counts only while its file is there with the recorded size (`verify` checks sums)."""
    path = folder / entry["file"]
    return path.is_file() and path.stat().st_size == entry["bytes"]


def _build_shards(source: TapSource, folder: Path, manifest: dict[str, Any], mine: list[int],
                  state: PartialState, progress: bool) -> None:
    storage = manifest["storage"]
    per_shard, total = storage["records_per_shard"], manifest["num_records"]
    dtype, padding, size = DTYPES[storage["dtype"]], storage["padding"], storage["batch_size"]
    collate = source.collate()
    workers = source.num_workers
    count = sum(min(total, (i + 1) * per_shard) - i * per_shard for i in mine)
    bar = tqdm(total=count, desc=f"cache {source.role}", unit="rec", disable=not (progress and state.is_main_process))
    finished: list[dict[str, Any]] = []
    for index in mine:
        start, end = index * per_shard, min(total, (index + 1) * per_shard)
        loader = DataLoader(Subset(source.dataset, range(start, end)), batch_size=size, shuffle=False,
                            collate_fn=collate, num_workers=workers)
        packs, targets = [], []
        for batch, batch_targets in loader:
            taps = source.tap(batch)
            packs.append({k: v for name, t in taps.items() for k, v in pack_taps(name, t, dtype, padding).items()})
            targets.extend(batch_targets)
            bar.update(len(batch_targets))
        digest, nbytes = write_shard(folder / shard_name(index), concat_packs(packs))
        entry = {"index": index, "file": shard_name(index), "start": start, "end": end, "sha256": digest,
                 "bytes": nbytes, "targets": targets}
        finished.append(entry)
        if state.num_processes == 1:  # the manifest itself records progress
            manifest["shards"] = merge_shards(manifest["shards"], [entry])
            manifest["complete"] = len(manifest["shards"]) == manifest["num_shards"]
            write_json(folder / MANIFEST, manifest)
        else:  # one progress file per rank: no two processes write the same file
            write_json(folder / f"progress-rank{state.process_index}.json", {"shards": finished})
    bar.close()


def _finish(folder: Path, world: int, seconds: float) -> dict[str, Any]:
    """Rank 0, after every rank finished: merge the progress files and mark the cache complete."""
    manifest = read_manifest(folder)
    manifest["shards"] = [e for e in merge_shards(manifest["shards"], read_progress(folder)) if _intact(folder, e)]
    manifest["complete"] = len(manifest["shards"]) == manifest["num_shards"]
    earlier = manifest.get("build", {}).get("seconds", 0.0)  # a resumed build adds up its runs
    manifest["build"] = {"seconds": round(earlier + seconds, 3), "world_size": world,
                         "bytes": sum(e["bytes"] for e in manifest["shards"])}
    write_json(folder / MANIFEST, manifest)
    for path in progress_files(folder):
        path.unlink()
    return manifest

