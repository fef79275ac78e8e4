"""VQA v2 and GQA questions, answer normalisation, soft scores and the answer vocabulary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unipt.data import DataFormatError, load_dataset
from unipt.data.errors import DataFileNotFoundError
from unipt.data.formats import AnswerVocab, normalize_answer, soft_scores


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Yes", "yes"),
        ("two", "2"),
        ("a dog", "dog"),
        ("dont", "don't"),
        ("hello, world", "hello world"),
        ("1,000", "1000"),
        ("3.5", "3.5"),
        ("yes.", "yes"),
        ("left/right", "left right"),
        ("t-shirt", "t shirt"),
        ("  The Red\ncar ", "red car"),
        ("None", "0"),
        ("what's up?", "what's up"),
    ],
)
def test_normalize_answer(raw: str, norm: str) -> None:
    assert normalize_answer(raw) == norm


def test_soft_scores() -> None:
    human = ["yes", "yes", "Yes", "no", "two", "2", "maybe", "maybe", "maybe", "maybe"]
    assert soft_scores(human) == {
        "yes": 1.0,
        "no": pytest.approx(1 / 3),
        "2": pytest.approx(2 / 3),
        "maybe": 1.0,
    }


def _ann(qid: int, image_id: int, answers: list[str], mc: str) -> dict[str, Any]:
    return {
        "question_type": "what is",
        "multiple_choice_answer": mc,
        "answer_type": "other",
        "question_id": qid,
        "image_id": image_id,
        "answers": [
            {"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(answers)
        ],
    }


@pytest.fixture
def vqa_root(tmp_path: Path, write_json: Callable[..., Path], write_image: Callable[..., Path]) -> Path:
    root = tmp_path / "vqa"
    write_json(
        root / "v2_OpenEnded_mscoco_val2014_questions.json",
        {
            "info": {},
            "task_type": "Open-Ended",
            "data_type": "mscoco",
            "license": {},
            "data_subtype": "val2014",
            "questions": [
                {"image_id": 42, "question": "What is on the couch?", "question_id": 42000},
                {"image_id": 42, "question": "How many dogs?", "question_id": 42001},
            ],
        },
    )
    write_json(
        root / "v2_mscoco_val2014_annotations.json",
        {
            "info": {},
            "license": {},
            "data_subtype": "val2014",
            "annotations": [
                _ann(42001, 42, ["two", "2", "2", "3"], "2"),
                _ann(42000, 42, ["A dog", "dog", "dog", "cat"], "dog"),
            ],
        },
    )
    write_json(
        root / "v2_OpenEnded_mscoco_test-dev2015_questions.json",
        {
            "data_subtype": "test-dev2015",
            "questions": [{"image_id": 1, "question": "Why?", "question_id": 10}],
        },
    )
    write_image(root / "val2014" / "COCO_val2014_000000000042.jpg", (3, 3), (1, 2, 3))
    return root


def test_vqa_records(vqa_root: Path) -> None:
    ds = load_dataset("vqa", "val", root=vqa_root)
    path = str(vqa_root / "val2014" / "COCO_val2014_000000000042.jpg")
    assert ds.records[0] == {
        "question_id": 42000,
        "image_id": 42,
        "image_path": path,
        "text": "What is on the couch?",
        "answers": {"dog": 1.0, "cat": pytest.approx(1 / 3)},
        "answer": "dog",
        "answer_type": "other",
        "question_type": "what is",
    }
    assert ds.records[1]["answers"] == {"2": 1.0, "3": pytest.approx(1 / 3)}
    assert ds[0]["image"].size == (3, 3)
    test = load_dataset("vqa", "test-dev", root=vqa_root, image_root=vqa_root / "imgs", load_images=False)
    assert test[0] == {
        "question_id": 10,
        "image_id": 1,
        "text": "Why?",
        "image_path": str(vqa_root / "imgs" / "COCO_test2015_000000000001.jpg"),
    }


def test_answer_vocab_build_save_load_and_targets(vqa_root: Path, tmp_path: Path) -> None:
    train = load_dataset("vqa", "val", root=vqa_root)
    vocab = AnswerVocab.build([r["answer"] for r in train.records] + ["dog"], min_count=1)
    assert vocab.answers == ["dog", "2"]  # most frequent first, ties alphabetical
    assert AnswerVocab.build(["b", "a", "b", "c", "a"], min_count=2).answers == ["a", "b"]
    vocab.save(tmp_path / "answers.json")
    again = AnswerVocab.load(tmp_path / "answers.json")
    assert again == vocab and "dog" in again and len(again) == 2
    ds = load_dataset("vqa", "val", root=vqa_root, answer_vocab=tmp_path / "answers.json")
    assert ds.records[0]["target"] == {0: 1.0} and ds.records[1]["target"] == {1: 1.0}
    (tmp_path / "bad.json").write_text('{"answers": [1]}')
    with pytest.raises(DataFormatError, match="field 'answers'"):
        AnswerVocab.load(tmp_path / "bad.json")


def test_vqa_errors(vqa_root: Path, write_json: Callable[..., Path]) -> None:
    ann = vqa_root / "v2_mscoco_val2014_annotations.json"
    write_json(ann, {"annotations": [_ann(42000, 42, ["dog"], "dog")]})
    with pytest.raises(DataFormatError) as info:
        load_dataset("vqa", "val", root=vqa_root)
    assert str(ann) in str(info.value) and "question_id 42001" in str(info.value)
    bad = _ann(42000, 42, ["dog"], "dog")
    del bad["multiple_choice_answer"]
    write_json(ann, {"annotations": [bad]})
    with pytest.raises(DataFormatError, match=r"record annotations\[0\]: field 'multiple_choice_answer'"):
        load_dataset("vqa", "val", root=vqa_root)
    with pytest.raises(DataFileNotFoundError, match="VQA questions JSON not found"):
        load_dataset("vqa", "train", root=vqa_root)


def test_gqa(tmp_path: Path, write_json: Callable[..., Path]) -> None:
    qs = {
        "201307251": {
            "semantic": [],
            "entailed": [],
            "equivalent": ["201307251"],
            "question": "Is the tray on top?",
            "imageId": "2386621",
            "isBalanced": True,
            "groups": {},
            "answer": "yes",
            "semanticStr": "",
            "annotations": {},
            "types": {},
            "fullAnswer": "Yes, the tray is on top.",
        },
    }
    write_json(tmp_path / "questions" / "val_balanced_questions.json", qs)
    ds = load_dataset("gqa", "val", root=tmp_path, answer_vocab=AnswerVocab(["no", "yes"]), load_images=False)
    assert ds[0] == {
        "question_id": "201307251",
        "image_id": "2386621",
        "image_path": str(tmp_path / "images" / "2386621.jpg"),
        "text": "Is the tray on top?",
        "answer": "yes",
        "answers": {"yes": 1.0},
        "full_answer": "Yes, the tray is on top.",
        "target": {1: 1.0},
    }
    del qs["201307251"]["imageId"]
    bad = write_json(tmp_path / "bad.json", qs)
    with pytest.raises(DataFormatError) as info:
        load_dataset("gqa", "val", questions=bad)
    assert (
        str(bad) in str(info.value)
        and "question '201307251'" in str(info.value)
        and "'imageId'" in str(info.value)
    )
    with pytest.raises(DataFileNotFoundError, match="GQA questions JSON not found"):
        load_dataset("gqa", "testdev", root=tmp_path)
