"""``manifest.json``: what a cache split holds, how it is stored, and which shards are done.

Layout of a cache folder (one sub-folder per run split)::

    DIR/train/manifest.json  DIR/train/shard-00000.safetensors ...
    DIR/eval/...             DIR/test/...

Manifest keys: ``format_version``, ``unipt_version``, ``complete``, ``split``, ``identity`` (``towers``:
backbone name + fingerprint, tap selection, preprocessing per tower; ``dataset``: name, split, options,
number of records, records hash), ``storage`` (dtype, padding, build batch size, records per shard),
``layout`` (per tower: masked?, number of taps, shapes), ``num_records``, ``num_shards``, ``shards`` (per
shard: index, file, record range, sha256, bytes, and the targets of its records), ``build``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unipt.cache.errors import CacheError
from unipt.files import atomic_write_json

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ROLES = ("train", "eval", "test")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (a crash leaves the old file intact)."""
    atomic_write_json(path, data)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a cache split folder; explains a missing or too-new one."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        hint = ""
        if Path(folder).is_dir():
            subs = sorted(p.name for p in Path(folder).iterdir() if (p / MANIFEST).is_file())
            hint = f" (it holds the cached splits {subs})" if subs else ""
        raise CacheError(f"{path} not found: {folder} is not an activation cache split{hint}; "
                         "build one with `unipt cache build CONFIG --out DIR`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CacheError(f"{path} is not valid JSON ({err}); rebuild the cache") from err
    version = manifest.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise CacheError(f"{path} was written by a newer unipt (cache format {version}); upgrade unipt")
    return manifest


def merge_shards(*lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Union of shard entries (by index, later lists win), sorted by index."""
    by_index: dict[int, dict[str, Any]] = {}
    for entries in lists:
        for entry in entries:
            by_index[int(entry["index"])] = entry
    return [by_index[i] for i in sorted(by_index)]


def progress_files(folder: Path) -> list[Path]:
    """Per-rank progress files of a distributed build (merged into the manifest when it ends)."""
    return sorted(Path(folder).glob("progress-rank*.json"))


def read_progress(folder: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in progress_files(folder):
        try:
            entries.extend(json.loads(path.read_text()).get("shards", []))
        except json.JSONDecodeError:
            continue  # a rank died while writing: its shards are rebuilt
    return entries


def split_folders(root: Path) -> list[Path]:
    """``root`` itself when it is a split folder, else its split sub-folders."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return [root]
    return sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []
