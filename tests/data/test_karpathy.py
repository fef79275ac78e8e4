"""Karpathy-split caption JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unipt.data import DataFormatError, load_dataset
from unipt.data.errors import DataFileNotFoundError


def _sent(raw: str, sentid: int, imgid: int) -> dict[str, Any]:
    return {"tokens": raw.lower().rstrip(".").split(), "raw": raw, "imgid": imgid, "sentid": sentid}


@pytest.fixture
def coco_json(tmp_path: Path, write_json: Callable[..., Path], write_image: Callable[..., Path]) -> Path:
    root = tmp_path / "coco"
    write_image(root / "images" / "val2014" / "COCO_val2014_000000000042.jpg", (6, 4), (10, 20, 30))
    images = [
        {
            "filepath": "val2014",
            "sentids": [0, 1],
            "filename": "COCO_val2014_000000000042.jpg",
            "imgid": 0,
            "split": "test",
            "sentences": [_sent("A dog on a couch.", 0, 0), _sent(" Brown dog sleeping ", 1, 0)],
            "cocoid": 42,
        },
        {
            "filepath": "train2014",
            "sentids": [2],
            "filename": "COCO_train2014_000000000007.jpg",
            "imgid": 1,
            "split": "train",
            "sentences": [_sent("A red bus.", 2, 1)],
            "cocoid": 7,
        },
        {
            "filepath": "val2014",
            "sentids": [3],
            "filename": "COCO_val2014_000000000009.jpg",
            "imgid": 2,
            "split": "restval",
            "sentences": [_sent("Two cats.", 3, 2)],
            "cocoid": 9,
        },
    ]
    return write_json(root / "dataset_coco.json", {"images": images, "dataset": "coco"})


def test_test_split_records(coco_json: Path) -> None:
    root = coco_json.parent
    ds = load_dataset("karpathy", "test", path=coco_json, image_root=root / "images")
    path = str(root / "images" / "val2014" / "COCO_val2014_000000000042.jpg")
    assert ds.items == [
        {"image_path": path, "image_id": 0, "filename": "COCO_val2014_000000000042.jpg", "split": "test"}
    ]
    assert ds.captions == ["A dog on a couch.", "Brown dog sleeping"]
    assert ds.caption_to_item == [0, 0] and ds.item_to_captions == [[0, 1]]
    rec = ds[1]
    assert rec["text"] == "Brown dog sleeping" and rec["sentence_id"] == 1
    assert rec["image"].mode == "RGB" and rec["image"].size == (6, 4)


def test_restval_option(coco_json: Path) -> None:
    with_rest = load_dataset("karpathy", "train", path=coco_json, load_images=False)
    without = load_dataset("karpathy", "train", path=coco_json, restval_as_train=False)
    assert [i["image_id"] for i in with_rest.items] == [1, 2]
    assert [i["image_id"] for i in without.items] == [1]
    assert with_rest.items[0]["image_path"] == str(
        coco_json.parent / "train2014" / "COCO_train2014_000000000007.jpg"
    )
    assert load_dataset("karpathy", "restval", path=coco_json).captions == ["Two cats."]


def test_flickr_without_filepath_and_caption_cap(tmp_path: Path, write_json: Callable[..., Path]) -> None:
    sents = [_sent(f"caption {k}.", k, 0) for k in range(6)]
    p = write_json(
        tmp_path / "dataset_flickr30k.json",
        {"images": [{"filename": "1000092795.jpg", "imgid": 0, "split": "val", "sentences": sents}]},
    )
    ds = load_dataset(
        "karpathy", "val", path=p, image_root=tmp_path / "flickr30k-images", max_captions_per_image=5
    )
    assert ds.items[0]["image_path"] == str(tmp_path / "flickr30k-images" / "1000092795.jpg")
    assert len(ds) == 5 and ds.meta["dropped_captions"] == 1


def test_malformed(tmp_path: Path, write_json: Callable[..., Path]) -> None:
    p = write_json(
        tmp_path / "dataset_flickr30k.json",
        {"images": [{"filename": "a.jpg", "split": "test", "sentences": [{"tokens": ["x"]}]}]},
    )
    with pytest.raises(DataFormatError) as info:
        load_dataset("karpathy", "test", path=p)
    msg = str(info.value)
    assert str(p) in msg and "images[0].sentences[0]" in msg and "'raw'" in msg
    q = write_json(tmp_path / "d2.json", {"images": [{"filename": "a.jpg", "split": "dev", "sentences": []}]})
    with pytest.raises(DataFormatError, match=r"record images\[0\]: field 'split': unknown split 'dev'"):
        load_dataset("karpathy", "test", path=q)
    with pytest.raises(DataFileNotFoundError, match="Karpathy-split caption JSON not found"):
        load_dataset("karpathy", "test", path=tmp_path / "missing.json")
