"""Building a cache and reading it back: the stored taps are the backbone's taps, in every storage mode."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader

from unipt.cache import CacheCollator, CachedDataset
from unipt.taps import Taps
from unipt.train.cache_source import CacheSource
from unipt.train.caching import build_cache, plan_cache

from . import tiny


def live_taps(config, split="train"):
    """Per-record live taps (valid tokens only) of the split, each record tapped on its own."""
    source = CacheSource.from_config(config, split)
    collate = source.collate()
    out = []
    for i in range(len(source.dataset)):
        batch, targets = collate([source.dataset[i]])
        taps = source.tap(batch)["text"]
        out.append(([h[0] for h in taps.hidden], targets[0]))
    return out


@pytest.mark.parametrize(("dtype", "padding", "atol"), [("fp32", True, 1e-5), ("fp32", False, 1e-5),
                                                         ("fp16", False, 2e-2)])
def test_cached_records_equal_live_taps(config, tmp_path, dtype, padding, atol):
    manifest = build_cache(config, tmp_path / "c", "train", dtype=dtype, padding=padding, records_per_shard=24,
                           progress=False)
    assert manifest["complete"] and manifest["num_records"] == 64 and manifest["num_shards"] == 3
    assert [s["file"] for s in manifest["shards"]] == [f"shard-0000{i}.safetensors" for i in range(3)]
    assert [(s["start"], s["end"]) for s in manifest["shards"]] == [(0, 24), (24, 48), (48, 64)]
    data = CachedDataset(tmp_path / "c" / "train")
    reference = live_taps(config)
    longest_padded = 0
    for i in (0, 5, 23, 24, 40, 63):  # records of every shard
        record = data[i]["taps"]["text"]
        mask = record["mask"].bool()
        hidden, targets = reference[i]
        assert int(mask.sum()) == hidden[0].shape[0]
        for stored, live in zip(record["hidden"], hidden, strict=True):
            assert stored.dtype == {"fp32": torch.float32, "fp16": torch.float16}[dtype]
            torch.testing.assert_close(stored[mask].float(), live, atol=atol, rtol=0)
        assert data[i]["targets"] == targets
        longest_padded = max(longest_padded, int((~mask).sum()))
    assert (longest_padded > 0) == padding  # padded rows are stored only with padding


def test_collate_pads_builds_taps_and_targets(config, tmp_path):
    build_cache(config, tmp_path / "c", "train", padding=False, progress=False)
    data = CachedDataset(tmp_path / "c" / "train")
    records = [data[i] for i in range(5)]
    batch = CacheCollator()(records)
    taps = batch.towers["text"].taps
    lengths = [r["taps"]["text"]["mask"].shape[0] for r in records]
    assert isinstance(taps, Taps) and batch.towers["text"].inputs is None and taps.mask.shape == (5, max(lengths))
    assert taps.mask.sum(1).tolist() == lengths
    assert len(taps.hidden) == 3 and all(h.shape == (5, max(lengths), 32) for h in taps.hidden)
    assert all(float(h[i, n:].abs().sum()) == 0 for h in taps.hidden for i, n in enumerate(lengths))
    assert batch.targets["label"].tolist() == [r["targets"]["label"] for r in records]
    moved = taps.to("meta")
    assert all(t.device.type == "meta" for t in [*moved.hidden, moved.mask])


def test_dataloader_workers_reopen_the_shards(config, tmp_path):
    build_cache(config, tmp_path / "c", "train", records_per_shard=32, progress=False)
    data = CachedDataset(tmp_path / "c" / "train")
    data[0]  # the parent opened a memory map; workers get a pickled copy without it
    loader = DataLoader(data, batch_size=16, collate_fn=CacheCollator(), num_workers=1)
    labels = torch.cat([b.targets["label"] for b in loader])
    assert labels.tolist() == [t["label"] for t in data.targets]


def test_manifest_records_what_the_cache_was_built_from(config, data_root, tmp_path):
    build_cache(config, tmp_path / "c", "train", dtype="bf16", padding=False, progress=False)
    manifest = json.loads((tmp_path / "c" / "train" / "manifest.json").read_text())
    tower = manifest["identity"]["towers"]["text"]
    assert manifest["format_version"] == 1 and manifest["split"] == "train"
    assert tower["backbone"] == tiny.NAME and set(tower["fingerprint"]) == {"class", "structure", "weights"}
    assert tower["taps"]["tap_source"] == "hidden_states" and tower["taps"]["in_widths"] == [32, 32, 32]
    assert tower["preprocessing"] == {"kind": "HashTokenizer", "vocab_size": 100, "max_length": 12}
    dataset = manifest["identity"]["dataset"]
    assert dataset["name"] == "text_jsonl" and dataset["split"] == "train" and dataset["num_records"] == 64
    assert manifest["storage"]["dtype"] == "bf16" and manifest["storage"]["padding"] is False
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    labels = [json.loads(line)["label"] for line in (data_root / "train.jsonl").read_text().splitlines()]
    assert [t["label"] for s in manifest["shards"] for t in s["targets"]] == labels


def test_plan_estimates_size_and_time(tmp_path):
    uniform = tiny.write_data(tmp_path / "uniform", varied=False)  # every record has the same token count
    config = tiny.config(uniform, tmp_path / "run")
    plan = plan_cache(config, "train", padding=False)
    manifest = build_cache(config, tmp_path / "c", "train", padding=False, progress=False)
    actual = manifest["build"]["bytes"]
    assert plan["records"] == 64 and plan["estimated_seconds"] > 0
    assert abs(plan["estimated_bytes"] - actual) / actual < 0.05
    assert plan["layout"]["text"]["hidden_shapes"] == [["L", 32]] * 3
