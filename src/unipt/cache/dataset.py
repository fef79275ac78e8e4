"""CachedDataset: records of a built cache split (memory-mapped taps + targets), no backbone, no images."""

from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from unipt.cache.errors import CacheIncomplete, CacheMismatch
from unipt.cache.identity import differences
from unipt.cache.manifest import read_manifest
from unipt.cache.shards import ShardReader


class CachedDataset(Dataset):
    """One cache split. ``dataset[i]`` is ``{"taps": {tower: {...}}, "targets": {...}, "index": i}``.

    Per tower: ``hidden`` (list of ``[L_i, D_j]`` tokens or ``[C, H, W]`` maps), ``mask`` (``[L_i]`` uint8 or
    None), ``final`` (``[D]`` or None), ``class_index`` (scalar or None), ``decoder_hidden`` (list of ``[Q, D]``).
    Targets: the record's ``label``, ``item_index``, ``answers``, ``box``... as stored at build time.

    Args:
        folder: the split folder (``DIR/train``).
        verify: ``"lazy"`` checks each shard's sha256 when it is first read, ``"full"`` checks every shard
            now, ``"none"`` only checks that the files exist with the right size.
    """

    def __init__(self, folder: str | os.PathLike[str], verify: str = "lazy"):
        if verify not in ("lazy", "full", "none"):
            raise ValueError(f"verify must be 'lazy', 'full' or 'none', not {verify!r}")
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        shards = self.manifest["shards"]
        if not self.manifest.get("complete"):
            raise CacheIncomplete(
                f"activation cache {self.folder} is incomplete ({len(shards)} of {self.manifest['num_shards']} "
                "shards): its build stopped early. Rerun the same `unipt cache build` command to resume it."
            )
        self.layout: dict[str, dict[str, Any]] = self.manifest["layout"]
        self.readers = [ShardReader(self.folder / e["file"], e["sha256"], e["bytes"], self.layout,
                                    verify=verify != "none") for e in shards]
        for reader in self.readers:
            reader.check_present()
            if verify == "full":
                reader.check_checksum()
                reader.verify = False
        self.starts = [int(e["start"]) for e in shards]
        self.targets: list[dict[str, Any]] = [t for e in shards for t in e["targets"]]
        if len(self.targets) != self.manifest["num_records"]:
            raise CacheIncomplete(f"{self.folder}/manifest.json lists {len(self.targets)} records' targets for "
                                  f"{self.manifest['num_records']} records; rebuild the cache")

    @property
    def towers(self) -> list[str]:
        return list(self.layout)

    @property
    def identity(self) -> dict[str, Any]:
        return self.manifest["identity"]

    def check(self, expected: dict[str, Any]) -> None:
        """Refuse the cache unless it was built for ``expected`` (``{"towers": ..., "dataset": ...}``);
        the error lists every differing field."""
        diffs = differences(self.identity, expected)
        if diffs:
            raise CacheMismatch(str(self.folder), diffs)

    def __len__(self) -> int:
        return int(self.manifest["num_records"])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} out of range for a cache of {len(self)} records")
        shard = bisect.bisect_right(self.starts, index) - 1
        taps = self.readers[shard].record(index - self.starts[shard])
        return {"taps": taps, "targets": self.targets[index], "index": index}
