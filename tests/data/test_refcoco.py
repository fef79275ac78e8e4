"""RefCOCO family: REFER pickle + COCO instances, MDETR JSON, and the restricted unpickler."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unipt.data import DataFormatError, load_dataset
from unipt.data.errors import DataFileNotFoundError, UnsafePickleError
from unipt.data.formats import safe_load_pickle

BOX = [103.93, 299.99, 238.15, 77.58]


def _ref(ref_id: int, ann_id: int, split: str, sents: list[tuple[int, str]]) -> dict[str, Any]:
    return {
        "image_id": 581857,
        "split": split,
        "file_name": f"COCO_train2014_000000581857_{ann_id}.jpg",
        "category_id": 1,
        "ann_id": ann_id,
        "sent_ids": [s for s, _ in sents],
        "ref_id": ref_id,
        "sentences": [
            {"tokens": t.split(), "raw": t.upper() + "!", "sent_id": s, "sent": t} for s, t in sents
        ],
    }


@pytest.fixture
def refer_root(tmp_path: Path, write_json: Callable[..., Path]) -> Path:
    root = tmp_path / "refer"
    (root / "refcoco").mkdir(parents=True)
    refs = [_ref(0, 1, "train", [(0, "woman in red"), (1, "left lady")]), _ref(1, 2, "testA", [(2, "man")])]
    with (root / "refcoco" / "refs(unc).p").open("wb") as fh:
        pickle.dump(refs, fh, protocol=2)
    write_json(
        root / "refcoco" / "instances.json",
        {
            "images": [
                {
                    "license": 1,
                    "file_name": "COCO_train2014_000000581857.jpg",
                    "height": 480,
                    "width": 640,
                    "id": 581857,
                }
            ],
            "annotations": [
                {
                    "segmentation": [[1, 2, 3, 4]],
                    "area": 10.0,
                    "iscrowd": 0,
                    "image_id": 581857,
                    "bbox": BOX,
                    "category_id": 1,
                    "id": 1,
                },
                {
                    "segmentation": [],
                    "area": 5.0,
                    "iscrowd": 0,
                    "image_id": 581857,
                    "bbox": [0, 0, 10, 20],
                    "category_id": 1,
                    "id": 2,
                },
            ],
            "categories": [{"supercategory": "person", "id": 1, "name": "person"}],
        },
    )
    return root


def test_refer_records(refer_root: Path) -> None:
    ds = load_dataset("refcoco", "train", root=refer_root, image_root=refer_root / "train2014")
    assert len(ds) == 2
    assert ds.records[0] == {
        "image_path": str(refer_root / "train2014" / "COCO_train2014_000000581857.jpg"),
        "text": "woman in red",
        "box": BOX,
        "split": "train",
        "image_id": 581857,
        "ref_id": 0,
        "ann_id": 1,
        "sent_id": 0,
        "category_id": 1,
        "width": 640,
        "height": 480,
    }
    test_a = load_dataset("refcoco", "testA", root=refer_root, text_field="raw")
    assert [(r["text"], r["box"]) for r in test_a.records] == [("MAN!", [0.0, 0.0, 10.0, 20.0])]
    with pytest.raises(ValueError, match=r"no refs with split 'val'; the file has \['testA', 'train'\]"):
        load_dataset("refcoco", "val", root=refer_root)


def test_refer_errors(refer_root: Path, write_json: Callable[..., Path]) -> None:
    inst = refer_root / "refcoco" / "instances.json"
    write_json(
        inst,
        {
            "images": [{"file_name": "x.jpg", "id": 581857}],
            "annotations": [{"image_id": 581857, "bbox": [1, 2, 3], "id": 1}],
        },
    )
    with pytest.raises(DataFormatError) as info:
        load_dataset("refcoco", "train", root=refer_root)
    assert (
        str(inst) in str(info.value) and "annotations[0]" in str(info.value) and "'bbox'" in str(info.value)
    )
    with pytest.raises(DataFileNotFoundError, match=r"refs\(umd\)\.p"):
        load_dataset("refcocog", "val", root=refer_root)


def test_mdetr_json(tmp_path: Path, write_json: Callable[..., Path]) -> None:
    write_json(
        tmp_path / "finetune_refcoco+_val.json",
        {
            "images": [
                {
                    "file_name": "COCO_train2014_000000581857.jpg",
                    "height": 480,
                    "width": 640,
                    "id": 0,
                    "original_img_id": 581857,
                    "caption": "the lady with the blue shirt",
                    "dataset_name": "refcoco+",
                    "tokens_negative": [[0, 3]],
                    "sentence_id": 0,
                    "tokens_positive_eval": [[[4, 8]]],
                }
            ],
            "annotations": [
                {
                    "area": 1.0,
                    "iscrowd": 0,
                    "image_id": 0,
                    "category_id": 1,
                    "id": 0,
                    "bbox": BOX,
                    "tokens_positive": [[4, 8]],
                }
            ],
            "categories": [{"supercategory": "person", "id": 1, "name": "person"}],
        },
    )
    ds = load_dataset("refcoco+", "val", root=tmp_path, image_root=tmp_path / "coco")
    assert ds.records == [
        {
            "image_path": str(tmp_path / "coco" / "COCO_train2014_000000581857.jpg"),
            "text": "the lady with the blue shirt",
            "box": BOX,
            "boxes": [BOX],
            "tokens_positive": [[4, 8]],
            "split": "val",
            "image_id": 581857,
            "expression_id": 0,
            "width": 640,
            "height": 480,
        }
    ]
    bad = write_json(
        tmp_path / "bad.json",
        {"images": [{"id": 0, "file_name": "a.jpg"}], "annotations": [{"image_id": 0, "bbox": BOX}]},
    )
    with pytest.raises(DataFormatError, match=r"bad\.json: record images\[0\]: field 'caption'"):
        load_dataset("refcoco", "val", mdetr_json=bad)
    spans = write_json(
        tmp_path / "spans.json",
        {"images": [{"id": 0, "file_name": "a.jpg", "caption": "a cat"}],
         "annotations": [{"image_id": 0, "bbox": BOX, "tokens_positive": [2, 5]}]},
    )
    with pytest.raises(DataFormatError, match=r"annotations\[0\]: field 'tokens_positive'"):
        load_dataset("refcoco", "val", mdetr_json=spans)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_globals(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "refs(unc).p"
    evil.write_bytes(pickle.dumps([{"split": "train", "x": _Evil(marker)}], protocol=2))
    with pytest.raises(UnsafePickleError) as info:
        safe_load_pickle(evil)
    assert "system" in str(info.value) and str(evil) in str(info.value) and "refused" in str(info.value)
    assert not marker.exists()
    (tmp_path / "eval.p").write_bytes(pickle.dumps((eval, ("1+1",))[0]))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_load_pickle(tmp_path / "eval.p")
    (tmp_path / "cut.p").write_bytes(pickle.dumps([1, 2, 3])[:-3])
    with pytest.raises(DataFormatError, match="unreadable pickle"):
        safe_load_pickle(tmp_path / "cut.p")


def test_restricted_unpickler_reads_python2_strings(tmp_path: Path) -> None:
    # [{'split': 'train', 'sent': 'caf\xc3\xa9'}, set([1])] as Python 2 writes it (protocol 2, byte strings)
    py2 = (
        b"\x80\x02]q\x00(}q\x01(U\x05splitq\x02U\x05trainq\x03U\x04sentq\x04U\x05caf\xc3\xa9q\x05u"
        b"c__builtin__\nset\nq\x06]q\x07K\x01a\x85q\x08Rq\x09e."
    )
    (tmp_path / "py2.p").write_bytes(py2)
    assert safe_load_pickle(tmp_path / "py2.p") == [{"split": "train", "sent": "café"}, {1}]
