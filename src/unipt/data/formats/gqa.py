"""GQA questions: ``{question_id: {"imageId", "question", "answer"?, "fullAnswer"?, ...}}``.

Images live at ``image_root / f"{imageId}.jpg"``. Answers are already normalised in GQA; each record
gets ``answers = {answer: 1.0}`` so VQA and GQA share the soft-score interface.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.base import RecordDataset
from unipt.data.errors import DataFormatError
from unipt.data.formats.answer_vocab import AnswerVocab
from unipt.data.io import get_field, read_json

__all__ = ["GQA_QUESTION_FILES", "load_gqa"]

GQA_QUESTION_FILES = {
    "train": "train_balanced_questions.json",
    "val": "val_balanced_questions.json",
    "testdev": "testdev_balanced_questions.json",
    "test": "test_balanced_questions.json",
    "submission": "submission_all_questions.json",
}


def load_gqa(
    split: str,
    *,
    root: str | PathLike[str] | None = None,
    questions: str | PathLike[str] | None = None,
    image_root: str | PathLike[str] | None = None,
    answer_vocab: AnswerVocab | str | PathLike[str] | None = None,
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RecordDataset:
    """Load GQA questions.

    Args:
        split: ``train``, ``val``, ``testdev``, ``test`` or ``submission`` (default file names in
            :data:`GQA_QUESTION_FILES`, looked up in ``root`` and ``root/questions``).
        questions: an explicit questions JSON (overrides the default name).
        image_root: image folder (default ``root/images``).
        answer_vocab: optional :class:`AnswerVocab` (or JSON path); adds ``target`` ``{index: 1.0}``.

    Records: ``question_id`` (str key), ``image_id``, ``image_path``, ``text``; when the file has
    answers also ``answer``, ``answers`` and ``full_answer``.
    """
    if questions is None:
        if root is None:
            raise ValueError("load_gqa needs root= or questions=")
        if split not in GQA_QUESTION_FILES:
            raise ValueError(f"unknown GQA split {split!r}; expected one of {tuple(GQA_QUESTION_FILES)}")
        name = GQA_QUESTION_FILES[split]
        candidates = [Path(root) / name, Path(root) / "questions" / name]
        questions = next((c for c in candidates if c.is_file()), candidates[0])
    q_path = Path(questions)
    base = Path(root) if root is not None else q_path.parent
    img_root = Path(image_root) if image_root is not None else base / "images"
    vocab = AnswerVocab.load(answer_vocab) if isinstance(answer_vocab, (str, PathLike)) else answer_vocab

    data = read_json(q_path, "GQA questions JSON", '{"<question_id>": {"imageId", "question", "answer"}}')
    if not isinstance(data, dict):
        raise DataFormatError(
            q_path,
            record="top level",
            problem=f"got {type(data).__name__}",
            expected="an object keyed by question id",
        )
    records = []
    for qid, q in data.items():
        where = f"question {qid!r}"
        image_id = get_field(q, "imageId", q_path, where, str)
        rec: dict[str, Any] = {
            "question_id": qid,
            "image_id": image_id,
            "image_path": str(img_root / f"{image_id}.jpg"),
            "text": get_field(q, "question", q_path, where, str),
        }
        if "answer" in q:
            answer = get_field(q, "answer", q_path, where, str)
            rec["answer"] = answer
            rec["answers"] = {answer: 1.0}
            rec["full_answer"] = q.get("fullAnswer")
            if vocab is not None:
                rec["target"] = vocab.encode(rec["answers"])
        records.append(rec)
    return RecordDataset(
        records,
        transform=transform,
        load_images=load_images,
        name="gqa",
        split=split,
        meta={"source": str(q_path), "answer_vocab": vocab},
    )
