"""Check a built cache end to end: manifest readable and complete, every shard present with its sha256."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unipt.cache.errors import CacheError
from unipt.cache.manifest import read_manifest, split_folders
from unipt.cache.shards import ShardReader


def verify_cache(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Verify a cache root (every split folder in it) or one split folder.

    Returns:
        one report per split: ``folder``, ``split``, ``records``, ``shards``, ``bytes``, ``complete`` and
        ``problems`` (each naming the shard at fault; empty when the split is sound).
    """
    folders = split_folders(Path(path))
    if not folders:
        raise CacheError(f"{path} holds no activation cache (no manifest.json in it or its sub-folders)")
    reports = []
    for folder in folders:
        manifest = read_manifest(folder)
        problems = []
        if not manifest.get("complete"):
            problems.append(f"incomplete: {len(manifest['shards'])} of {manifest['num_shards']} shards; rerun "
                            "`unipt cache build` to resume")
        for entry in manifest["shards"]:
            reader = ShardReader(folder / entry["file"], entry["sha256"], entry["bytes"], manifest["layout"])
            try:
                reader.check_checksum()
            except CacheError as err:
                problems.append(str(err))
        reports.append({"folder": str(folder), "split": manifest.get("split"), "records": manifest["num_records"],
                        "shards": manifest["num_shards"], "bytes": sum(e["bytes"] for e in manifest["shards"]),
                        "complete": bool(manifest.get("complete")), "problems": problems})
    return reports
