"""How a distributed cache build shares shards between ranks (simulated ranks, no processes)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import unipt.cache.build as build_module
from unipt.backbones import PACKAGED
from unipt.train.cache_source import CacheSource
from unipt.train.caching import build_cache

_spec = importlib.util.spec_from_file_location("tiny_for_ddp", Path(__file__).parents[1] / "cache" / "tiny.py")
tiny = sys.modules.setdefault("tiny_for_ddp", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(tiny)


class FakeState:
    """Rank ``rank`` of ``world``; ``on_barrier(n)`` runs at the n-th barrier (what other ranks did meanwhile)."""

    def __init__(self, rank: int, world: int, on_barrier):
        self.process_index, self.num_processes = rank, world
        self.is_main_process = rank == 0
        self.on_barrier, self.barriers = on_barrier, 0

    def wait_for_everyone(self) -> None:
        self.barriers += 1
        self.on_barrier(self.barriers)


def test_a_fast_rank_does_not_change_a_slow_ranks_share(tmp_path, monkeypatch):
    monkeypatch.setitem(PACKAGED, tiny.NAME, tiny.tiny_backbone)
    config = tiny.config(tiny.write_data(tmp_path / "data"), tmp_path / "run")
    folder = tmp_path / "cache" / "train"
    source = CacheSource.from_config(config, "train")
    storage = {"dtype": "fp32", "padding": True, "batch_size": 16}
    build_module._prepare(folder, source, source.identity(), storage, None, 16, 256.0)  # rank 0's skeleton

    def rank0_finished_shard_0(barrier: int) -> None:
        if barrier == 1:  # rank 0 leaves the first barrier earlier and records its first shard
            (folder / "shard-00000.safetensors").write_bytes(b"x" * 10)
            entry = {"index": 0, "file": "shard-00000.safetensors", "start": 0, "end": 16, "sha256": "0" * 64,
                     "bytes": 10, "targets": []}
            (folder / "progress-rank0.json").write_text(json.dumps({"shards": [entry]}))

    written: list[str] = []
    real_write = build_module.write_shard
    monkeypatch.setattr(build_module, "write_shard", lambda p, t: (written.append(p.name), real_write(p, t))[1])
    monkeypatch.setattr(build_module, "PartialState", lambda cpu=False: FakeState(1, 2, rank0_finished_shard_0))
    build_cache(config, tmp_path / "cache", "train", towers=source.towers, records_per_shard=16, progress=False)
    assert written == ["shard-00001.safetensors", "shard-00003.safetensors"]
    progress = json.loads((folder / "progress-rank1.json").read_text())
    assert [e["index"] for e in progress["shards"]] == [1, 3]


def test_rank_zero_merges_every_ranks_progress(tmp_path, monkeypatch):
    monkeypatch.setitem(PACKAGED, tiny.NAME, tiny.tiny_backbone)
    config = tiny.config(tiny.write_data(tmp_path / "data"), tmp_path / "run")
    reference = build_cache(config, tmp_path / "ref", "train", records_per_shard=16, progress=False)
    folder = tmp_path / "cache" / "train"

    def rank1_built_its_shards(barrier: int) -> None:
        if barrier == 2:  # rank 1 built shards 1 and 3 while rank 0 built 0 and 2 (copied from the reference)
            entries = [e for e in reference["shards"] if e["index"] in (1, 3)]
            for e in entries:
                (folder / e["file"]).write_bytes((tmp_path / "ref" / "train" / e["file"]).read_bytes())
            (folder / "progress-rank1.json").write_text(json.dumps({"shards": entries}))

    monkeypatch.setattr(build_module, "PartialState", lambda cpu=False: FakeState(0, 2, rank1_built_its_shards))
    manifest = build_cache(config, tmp_path / "cache", "train", records_per_shard=16, progress=False)
    assert manifest["complete"] and manifest["build"]["world_size"] == 2
    assert [e["sha256"] for e in manifest["shards"]] == [e["sha256"] for e in reference["shards"]]
    assert not list(folder.glob("progress-rank*.json"))
