"""Generic formats: image folder tree, text CSV / JSONL, image-caption JSONL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from unipt.data import DataFormatError, load_dataset
from unipt.data.errors import DataFileNotFoundError


def test_imagefolder(
    tmp_path: Path, write_image: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "pets"
    cat = write_image(root / "train" / "cat" / "c1.png", (3, 3), (9, 9, 9))
    dog1 = write_image(root / "train" / "dog" / "d1.jpg", (2, 2), (1, 1, 1))
    dog2 = write_image(root / "train" / "dog" / "sub" / "d2.JPEG", (2, 2), (1, 1, 1))
    (root / "train" / "dog" / "readme.txt").write_text("not an image")
    with caplog.at_level(logging.INFO):
        ds = load_dataset("imagefolder", "train", root=root)
    assert ds.class_names == ["cat", "dog"]
    assert ds.records == [
        {"image_path": str(cat), "label": 0, "class_name": "cat"},
        {"image_path": str(dog1), "label": 1, "class_name": "dog"},
        {"image_path": str(dog2), "label": 1, "class_name": "dog"},
    ]
    assert ds.meta["skipped_files"] == [str(root / "train" / "dog" / "readme.txt")]
    assert "skipped 1 non-image files" in caplog.text
    assert ds[0]["image"].size == (3, 3)
    fixed = load_dataset("imagefolder", "train", root=root, class_names=["bird", "cat", "dog"])
    assert [r["label"] for r in fixed.records] == [1, 2, 2]


def test_imagefolder_errors(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    with pytest.raises(DataFileNotFoundError, match="image folder"):
        load_dataset("imagefolder", "val", path=tmp_path / "missing")
    write_image(tmp_path / "val" / "fish" / "f.png")
    with pytest.raises(DataFormatError, match=r"record sub-folder 'fish': field 'class_names'"):
        load_dataset("imagefolder", "val", root=tmp_path, class_names=["cat", "dog"])


def test_text_csv(tmp_path: Path, write_text: Callable[..., Path]) -> None:
    write_text(tmp_path / "train.csv", 'text,label\n"Great, fun film",pos\nDull.,neg\nOkay I guess,neutral\n')
    ds = load_dataset("text_csv", "train", root=tmp_path)
    assert ds.records == [
        {"text": "Great, fun film", "label": 2},
        {"text": "Dull.", "label": 0},
        {"text": "Okay I guess", "label": 1},
    ]
    assert ds.class_names == ["neg", "neutral", "pos"]
    p = write_text(tmp_path / "ints.tsv", "review\tstars\nmeh\t0\nwow\t1\n")
    ints = load_dataset("text_csv", "x", path=p, text_column="review", label_column="stars", delimiter="\t")
    assert (
        ints.records == [{"text": "meh", "label": 0}, {"text": "wow", "label": 1}]
        and ints.class_names is None
    )
    unlabeled = load_dataset("text_csv", "x", path=p, text_column="review", label_column=None, delimiter="\t")
    assert unlabeled.records == [{"text": "meh"}, {"text": "wow"}]
    write_text(tmp_path / "test.csv", "text,label\nsuper,pos\nhmm,\n")
    with pytest.raises(DataFormatError) as info:
        load_dataset("text_csv", "test", root=tmp_path, label_names=ds.class_names)
    assert str(tmp_path / "test.csv") in str(info.value) and "record line 3" in str(info.value)
    assert "field 'label'" in str(info.value)
    write_text(tmp_path / "test.csv", "text,label\nsuper,great\n")
    with pytest.raises(DataFormatError, match="unknown label 'great'"):
        load_dataset("text_csv", "test", root=tmp_path, label_names=ds.class_names)
    with pytest.raises(DataFileNotFoundError, match="text CSV file not found"):
        load_dataset("text_csv", "val", root=tmp_path)


def test_text_jsonl(tmp_path: Path, write_text: Callable[..., Path]) -> None:
    p = write_text(tmp_path / "val.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": 0}\n')
    ds = load_dataset("text_jsonl", "val", path=p)
    assert ds.records == [{"text": "a", "label": 1}, {"text": "b", "label": 0}]
    named = write_text(
        tmp_path / "n.jsonl", '{"sentence": "a", "y": "spam"}\n{"sentence": "b", "y": "ham"}\n'
    )
    ds = load_dataset("text_jsonl", "val", path=named, text_field="sentence", label_field="y")
    assert [r["label"] for r in ds.records] == [1, 0] and ds.class_names == ["ham", "spam"]
    bad = write_text(tmp_path / "bad.jsonl", '{"text": "a", "label": 1}\n{"txt": "b", "label": 0}\n')
    with pytest.raises(DataFormatError, match=r"bad\.jsonl: record line 2: field 'text': field missing"):
        load_dataset("text_jsonl", "val", path=bad)
    with pytest.raises(DataFileNotFoundError, match="text JSONL file not found"):
        load_dataset("text_jsonl", "test", root=tmp_path)


def test_image_caption_jsonl(
    tmp_path: Path, write_text: Callable[..., Path], write_image: Callable[..., Path]
) -> None:
    a = write_image(tmp_path / "imgs" / "a.png", (2, 2), (5, 5, 5, 255), "RGBA")
    b = write_image(tmp_path / "elsewhere" / "b.jpg")
    p = write_text(
        tmp_path / "train.jsonl",
        '{"image": "imgs/a.png", "caption": "first"}\n'
        f'{{"image": "{b}", "caption": ["second", "third"]}}\n'
        '{"image": "imgs/a.png", "caption": " again "}\n',
    )
    ds = load_dataset("image_caption_jsonl", "train", path=p)
    assert ds.items == [
        {"image_path": str(a), "image_id": "imgs/a.png"},
        {"image_path": str(b), "image_id": str(b)},
    ]
    assert ds.captions == ["first", "second", "third", "again"]
    assert ds.caption_to_item == [0, 1, 1, 0] and [c["line"] for c in ds.caption_records] == [1, 2, 2, 3]
    assert ds[3]["image"].mode == "RGB"
    bad = write_text(tmp_path / "bad.jsonl", '{"image": "imgs/a.png", "text": "x"}\n')
    with pytest.raises(DataFormatError, match=r"bad\.jsonl: record line 1: field 'caption'"):
        load_dataset("image_caption_jsonl", "train", path=bad)
    with pytest.raises(DataFileNotFoundError, match="image-caption JSONL file not found"):
        load_dataset("image_caption_jsonl", "val", root=tmp_path)
