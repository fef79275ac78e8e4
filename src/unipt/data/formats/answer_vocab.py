"""Answer vocabulary for VQA-style classification heads (built from training answers, saved as JSON)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.errors import DataFormatError
from unipt.data.io import read_json

__all__ = ["AnswerVocab"]


class AnswerVocab:
    """An ordered list of answers; answer ``i`` is the i-th output of the classifier.

    Build it from the *training* split only, e.g.
    ``AnswerVocab.build(r["answer"] for r in train.records)``.
    """

    def __init__(self, answers: Iterable[str]) -> None:
        self.answers: list[str] = list(answers)
        self.index: dict[str, int] = {}
        for i, a in enumerate(self.answers):
            if a in self.index:
                raise ValueError(f"duplicate answer {a!r} in vocabulary")
            self.index[a] = i

    @classmethod
    def build(cls, answers: Iterable[str], min_count: int = 1, top_k: int | None = None) -> AnswerVocab:
        """Keep answers seen at least ``min_count`` times (at most ``top_k``), most frequent first.

        Ties are broken alphabetically so the vocabulary is reproducible.
        """
        counts = Counter(a for a in answers if a)
        kept = sorted((a for a, n in counts.items() if n >= min_count), key=lambda a: (-counts[a], a))
        return cls(kept[:top_k] if top_k is not None else kept)

    def __len__(self) -> int:
        return len(self.answers)

    def __contains__(self, answer: object) -> bool:
        return answer in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnswerVocab) and self.answers == other.answers

    def __repr__(self) -> str:
        return f"AnswerVocab(size={len(self)})"

    def encode(self, scores: Mapping[str, float]) -> dict[int, float]:
        """Map ``{answer: soft score}`` to ``{class index: score}``, dropping out-of-vocabulary answers."""
        return {self.index[a]: s for a, s in scores.items() if a in self.index}

    def save(self, path: str | PathLike[str]) -> None:
        """Write ``{"answers": [...]}`` as UTF-8 JSON."""
        Path(path).write_text(json.dumps({"answers": self.answers}, ensure_ascii=False, indent=0), "utf-8")

    @classmethod
    def load(cls, path: str | PathLike[str]) -> AnswerVocab:
        """Read a vocabulary written by :meth:`save`."""
        data: Any = read_json(path, "answer vocabulary JSON", '{"answers": ["yes", "no", ...]}')
        answers = data.get("answers") if isinstance(data, dict) else None
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise DataFormatError(
                path,
                record="top level",
                field="answers",
                expected="a list of strings",
                hint="create the file with AnswerVocab.save",
            )
        return cls(answers)
