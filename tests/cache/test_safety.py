"""Interrupted builds resume, corrupted shards are named, stale caches and uncacheable runs are refused."""

from __future__ import annotations

import pytest

import unipt.cache.build as build_module
from unipt.cache import CacheCorrupted, CachedDataset, CacheIncomplete, CacheMismatch, CacheRefused, verify_cache
from unipt.train import build_system
from unipt.train.caching import build_cache, use_cache
from unipt.train.data import load_run_data

from . import tiny


def sums(manifest):
    return [s["sha256"] for s in manifest["shards"]]


def test_interrupted_build_resumes_where_it_stopped(config, tmp_path, monkeypatch):
    reference = build_cache(config, tmp_path / "ref", "train", records_per_shard=16, progress=False)
    written = []
    real_write = build_module.write_shard

    def crash_on_third(path, tensors):
        if len(written) == 2:
            raise KeyboardInterrupt("killed")
        written.append(path.name)
        return real_write(path, tensors)

    monkeypatch.setattr(build_module, "write_shard", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_cache(config, tmp_path / "c", "train", records_per_shard=16, progress=False)
    with pytest.raises(CacheIncomplete, match="2 of 4 shards"):
        CachedDataset(tmp_path / "c" / "train")
    assert not list((tmp_path / "c" / "train").glob(".*.tmp"))  # no half-written shard left behind

    written.clear()
    monkeypatch.setattr(build_module, "write_shard", lambda p, t: (written.append(p.name), real_write(p, t))[1])
    manifest = build_cache(config, tmp_path / "c", "train", records_per_shard=16, progress=False)
    assert written == ["shard-00002.safetensors", "shard-00003.safetensors"]  # only the missing shards
    assert manifest["complete"] and sums(manifest) == sums(reference)


def test_corrupted_shard_is_named(config, tmp_path):
    build_cache(config, tmp_path / "c", "train", records_per_shard=16, progress=False)
    shard = tmp_path / "c" / "train" / "shard-00001.safetensors"
    raw = bytearray(shard.read_bytes())
    raw[-5] ^= 0xFF  # flip bits inside the tensor data: same size, other content
    shard.write_bytes(bytes(raw))
    data = CachedDataset(tmp_path / "c" / "train")
    data[3]  # shard 0 is fine
    with pytest.raises(CacheCorrupted, match="shard-00001.safetensors"):
        data[20]
    with pytest.raises(CacheCorrupted, match="shard-00001.safetensors"):
        CachedDataset(tmp_path / "c" / "train", verify="full")
    (report,) = verify_cache(tmp_path / "c")
    assert len(report["problems"]) == 1 and "shard-00001" in report["problems"][0]

    shard.write_bytes(bytes(raw[:100]))  # truncated: caught when the cache is opened
    with pytest.raises(CacheCorrupted, match="shard-00001.safetensors.*truncated"):
        CachedDataset(tmp_path / "c" / "train")


def _system_and_data(config):
    data = load_run_data(config)
    return build_system(config, task_options=data.task_options), data


def test_cache_for_another_setup_is_refused_with_the_differing_fields(config, data_root, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    for split in ("train", "eval", "test"):
        build_cache(config, cache, split, progress=False)
    system, data = _system_and_data(config)
    use_cache(config, system, data, cache)  # the run it was built for: accepted

    other = tiny.config(data_root, tmp_path / "run", **{"towers.text.max_length": 8, "data.limit_train": 40})
    system, data = _system_and_data(other)
    with pytest.raises(CacheMismatch) as err:
        use_cache(other, system, data, cache)
    fields = {line.split(":")[0] for line in err.value.differences}
    assert fields == {"towers.text.preprocessing.max_length", "dataset.num_records", "dataset.records_sha256"}

    monkeypatch.setitem(tiny.PACKAGED, tiny.NAME, lambda **_: tiny.tiny_backbone(seed=1))  # other weights
    system, data = _system_and_data(config)
    with pytest.raises(CacheMismatch, match="towers.text.fingerprint.weights") as err:
        use_cache(config, system, data, cache)
    assert len(err.value.differences) == 1

    with pytest.raises(CacheMismatch, match="overwrite"):  # building into it refuses too...
        build_cache(config, cache, "train", progress=False)
    manifest = build_cache(config, cache, "train", overwrite=True, progress=False)  # ...unless asked
    assert manifest["complete"]


def test_dropout_augmentation_and_other_methods_are_refused(config, data_root, tmp_path):
    dropout = tiny.config(data_root, tmp_path / "r", **{"towers.text.options.keep_backbone_dropout": True})
    with pytest.raises(CacheRefused, match="keep_backbone_dropout"):
        build_cache(dropout, tmp_path / "c", "train", progress=False)

    augmented = tiny.config(data_root, tmp_path / "r", **{"data.options.augment": True})
    with pytest.raises(CacheRefused, match="augmentation"):
        build_cache(augmented, tmp_path / "c", "train", progress=False)

    bitfit = tiny.config(data_root, tmp_path / "r", **{"towers.text.method": "bitfit"})
    with pytest.raises(CacheRefused, match="method 'bitfit'"):
        build_cache(bitfit, tmp_path / "c", "train", progress=False)
    assert not (tmp_path / "c" / "train" / "manifest.json").exists()


def test_random_image_transform_is_refused():
    from unipt.cache.identity import check_cacheable
    from unipt.data.base import RecordDataset

    class RandomFlip:
        def __call__(self, image):
            return image

    with pytest.raises(CacheRefused, match="RandomFlip"):
        check_cacheable({}, RecordDataset([{"image_path": "x.png"}], transform=RandomFlip()), {})
    deterministic = RandomFlip()
    deterministic.deterministic = True
    check_cacheable({}, RecordDataset([{"image_path": "x.png"}], transform=deterministic), {})
