"""VQA v2 (questions JSON + annotations JSON over COCO images).

* questions: ``{"data_subtype": "train2014"?, "questions": [{"image_id", "question", "question_id"}]}``
* annotations: ``{"annotations": [{"question_id", "answers": [{"answer"}, ...],
  "multiple_choice_answer", "answer_type"?, "question_type"?}]}`` (absent for the test splits)
* images: ``image_root / "COCO_{subtype}_{image_id:012d}.jpg"`` (e.g. ``COCO_val2014_000000000042.jpg``)
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.base import RecordDataset
from unipt.data.errors import DataFormatError
from unipt.data.formats.answer_vocab import AnswerVocab
from unipt.data.formats.vqa_answers import normalize_answer, soft_scores
from unipt.data.io import get_field, read_json

__all__ = ["VQA_SUBTYPES", "load_vqa"]

VQA_SUBTYPES = {"train": "train2014", "val": "val2014", "test": "test2015", "test-dev": "test-dev2015"}
DEFAULT_IMAGE_PATTERN = "COCO_{subtype}_{image_id:012d}.jpg"


def _read_annotations(path: Path) -> dict[int, dict[str, Any]]:
    data = read_json(path, "VQA annotations JSON", '{"annotations": [{"question_id", "answers", ...}]}')
    anns = get_field(data, "annotations", path, "top level", list)
    out: dict[int, dict[str, Any]] = {}
    for i, ann in enumerate(anns):
        where = f"annotations[{i}]"
        qid = get_field(ann, "question_id", path, where, int)
        answers = get_field(ann, "answers", path, where, list)
        human = [get_field(a, "answer", path, f"{where}.answers[{j}]", str) for j, a in enumerate(answers)]
        mc = get_field(ann, "multiple_choice_answer", path, where, str)
        out[qid] = {
            "answers": soft_scores(human),
            "answer": normalize_answer(mc),
            "answer_type": ann.get("answer_type"),
            "question_type": ann.get("question_type"),
        }
    return out


def load_vqa(
    split: str,
    *,
    root: str | PathLike[str] | None = None,
    questions: str | PathLike[str] | None = None,
    annotations: str | PathLike[str] | None = None,
    image_root: str | PathLike[str] | None = None,
    image_pattern: str = DEFAULT_IMAGE_PATTERN,
    answer_vocab: AnswerVocab | str | PathLike[str] | None = None,
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RecordDataset:
    """Load VQA v2 questions (with answers when annotations exist).

    Args:
        split: ``train``, ``val``, ``test`` or ``test-dev`` (chooses the default file names).
        root: folder with ``v2_OpenEnded_mscoco_{subtype}_questions.json`` and
            ``v2_mscoco_{subtype}_annotations.json``; images default to ``root/<subtype>/``.
        questions, annotations: explicit files (annotations are optional unless given explicitly).
        image_root: folder of COCO images. ``image_pattern`` may use ``{subtype}`` (the questions file's
            ``data_subtype``, ``test-dev2015`` mapped to ``test2015``), ``{split}`` and ``{image_id}``.
        answer_vocab: an :class:`AnswerVocab` (or its JSON path); adds ``target`` ``{index: score}``.

    Records: ``question_id``, ``image_id``, ``image_path``, ``text`` (the question); with annotations
    also ``answers`` (``{normalised answer: min(#humans/3, 1)}``), ``answer`` (normalised
    ``multiple_choice_answer``), ``answer_type``, ``question_type``; with a vocabulary ``target``.
    """
    if split not in VQA_SUBTYPES:
        raise ValueError(f"unknown VQA split {split!r}; expected one of {tuple(VQA_SUBTYPES)}")
    base = Path(root) if root is not None else None
    subtype = VQA_SUBTYPES[split]
    if questions is None:
        if base is None:
            raise ValueError("load_vqa needs root= or questions=")
        questions = base / f"v2_OpenEnded_mscoco_{subtype}_questions.json"
    q_path = Path(questions)
    ann_path: Path | None = Path(annotations) if annotations is not None else None
    if ann_path is None and base is not None and (base / f"v2_mscoco_{subtype}_annotations.json").is_file():
        ann_path = base / f"v2_mscoco_{subtype}_annotations.json"
    vocab = AnswerVocab.load(answer_vocab) if isinstance(answer_vocab, (str, PathLike)) else answer_vocab

    data = read_json(q_path, "VQA questions JSON", '{"questions": [{"image_id", "question", "question_id"}]}')
    qs = get_field(data, "questions", q_path, "top level", list)
    image_subtype = str(data.get("data_subtype", subtype)).replace("test-dev", "test")
    img_root = Path(image_root) if image_root is not None else (base or q_path.parent) / image_subtype
    by_qid = _read_annotations(ann_path) if ann_path is not None else None

    records = []
    for i, q in enumerate(qs):
        where = f"questions[{i}]"
        qid = get_field(q, "question_id", q_path, where, int)
        image_id = get_field(q, "image_id", q_path, where, int)
        text = get_field(q, "question", q_path, where, str)
        name = image_pattern.format(subtype=image_subtype, split=split, image_id=image_id)
        rec: dict[str, Any] = {
            "question_id": qid,
            "image_id": image_id,
            "image_path": str(img_root / name),
            "text": text,
        }
        if by_qid is not None:
            if qid not in by_qid:
                raise DataFormatError(
                    ann_path or "",
                    record=f"question_id {qid}",
                    field="annotations",
                    problem=f"no annotation for this question (from {q_path.name} {where})",
                    hint="questions and annotations files must come from the same split",
                )
            rec.update(by_qid[qid])
            if vocab is not None:
                rec["target"] = vocab.encode(rec["answers"])
        records.append(rec)
    return RecordDataset(
        records,
        transform=transform,
        load_images=load_images,
        name="vqa",
        split=split,
        meta={
            "source": str(q_path),
            "annotations": str(ann_path) if ann_path else None,
            "answer_vocab": vocab,
        },
    )
