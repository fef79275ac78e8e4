"""Real packaged datasets (fetched into the cache on first use) and the IDX reader."""

from __future__ import annotations

import gzip
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from unipt.data import DataFormatError, load_dataset
from unipt.data.packaged.idx import read_idx
from unipt.data.packaged.tuxpaint import read_stamp_caption

SPLITS = ("train", "val", "test")


def test_read_idx_roundtrip_and_errors(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 3, 4) + data.tobytes())
    out = read_idx(p)
    assert out.shape == (2, 3, 4) and (out == data).all() and not out.flags.writeable
    plain = tmp_path / "y-idx1-ubyte"
    plain.write_bytes(b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + struct.pack(">2i", -1, 7))
    assert read_idx(plain).tolist() == [-1, 7]
    cut = tmp_path / "cut-idx1-ubyte"
    cut.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x01\x02")
    with pytest.raises(DataFormatError, match=r"cut-idx1-ubyte: record data: field 'payload'.*truncated"):
        read_idx(cut)
    bad = tmp_path / "bad"
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataFormatError, match="field 'magic'"):
        read_idx(bad)


def test_stamp_caption_first_line(tmp_path: Path) -> None:
    t = tmp_path / "s.txt"
    t.write_text("\ufeffA  red apple.\nfr.utf8=Une pomme.\n", encoding="utf-8")
    assert read_stamp_caption(t) == "A red apple."
    t.write_text("de.utf8=Ein Apfel.\n", encoding="utf-8")
    assert read_stamp_caption(t) is None
    t.write_text("\n", encoding="utf-8")
    assert read_stamp_caption(t) is None
    assert read_stamp_caption(tmp_path / "missing.txt") is None


def _assert_disjoint_and_deterministic(name: str, *key: str, **options: object) -> dict[str, list]:
    first = {s: load_dataset(name, s, **options) for s in SPLITS}
    again = {s: load_dataset(name, s, **options) for s in SPLITS}
    for s in SPLITS:
        assert first[s].records == again[s].records, f"{name} {s} split not deterministic"
    keys = {s: [tuple(r[k] for k in key) for r in first[s].records] for s in SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(keys[a]) & set(keys[b]), f"{name}: {a} and {b} overlap"
    return keys


def test_tuxpaint() -> None:
    keys = _assert_disjoint_and_deterministic("tuxpaint", "image_id", load_images=False)
    total = sum(len(v) for v in keys.values())
    everything = load_dataset("tuxpaint", "all")
    assert 770 <= total == len(everything) <= 810
    assert len(everything.meta["class_names"]) == 16
    assert everything.meta["skipped"]["no_caption"] == []
    assert len(everything.meta["skipped"]["mirror"]) >= 1 and len(everything.meta["skipped"]["svg_only"]) >= 1
    assert abs(len(keys["test"]) - 0.3 * total) <= 1 and abs(len(keys["val"]) - 0.1 * total) <= 1
    texts = everything.captions
    assert all(t and "utf8=" not in t and t == t.strip() for t in texts)
    assert len(everything) == len(everything.items)  # one caption per image
    rec = load_dataset("tuxpaint", "test", limit=3)[0]
    assert rec["image"].mode == "RGB" and rec["text"] and rec["category"] in everything.meta["class_names"]
    assert Path(rec["image_path"]).with_suffix(".txt").is_file()
    other_seed = load_dataset("tuxpaint", "test", seed=1, load_images=False)
    assert {(r["image_id"],) for r in other_seed.records} != set(keys["test"])
    mirrored = load_dataset("tuxpaint", "all", include_mirrors=True, load_images=False)
    assert len(mirrored) == total + len(everything.meta["skipped"]["mirror"])
    assert len(load_dataset("tuxpaint", "train", limit=20)) == 20


def test_fashion_mnist() -> None:
    keys = _assert_disjoint_and_deterministic("fashion_mnist", "official_split", "index", load_images=False)
    assert [len(keys[s]) for s in SPLITS] == [54000, 6000, 10000]
    val = load_dataset("fashion_mnist", "val")
    assert Counter(r["label"] for r in val.records) == {c: 600 for c in range(10)}
    assert val.class_names[0] == "T-shirt/top" and len(val.class_names) == 10
    img = val[0]["image"]
    assert img.mode == "RGB" and img.size == (28, 28)
    small = load_dataset("fashion_mnist", "test", limit=100)
    assert len(small) == 100 and len({r["label"] for r in small.records}) == 10
    assert set(r["index"] for r in small.records) <= set(range(10000))


def test_rotten_tomatoes() -> None:
    keys = _assert_disjoint_and_deterministic("rotten_tomatoes", "text")
    everything = load_dataset("rotten_tomatoes", "all")
    assert sum(len(v) for v in keys.values()) == len(everything) == 12808
    assert Counter(r["label"] for r in everything.records) == {1: 7403, 0: 5405}
    assert everything.meta["dropped_plot"] == 1097 and everything.class_names == ["rotten", "fresh"]
    assert set(everything.records[0]) == {"text", "label", "movie_name"}
    test = load_dataset("rotten_tomatoes", "test")
    share = sum(r["label"] for r in test.records) / len(test)
    assert abs(share - 7403 / 12808) < 0.01  # stratified
