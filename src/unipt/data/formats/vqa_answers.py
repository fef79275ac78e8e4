"""VQA answer normalisation and soft scores, following the official VQA evaluation script.

Steps (as in the evaluator): newlines/tabs to spaces; punctuation removed (or turned into a space when
it glues two words); periods dropped unless they are decimal points; lower-case; number words to digits
(``two`` -> ``2``); articles (``a``, ``an``, ``the``) dropped; common apostrophe-less contractions
restored (``dont`` -> ``don't``). The contraction table is a compact subset of the official one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

__all__ = ["normalize_answer", "soft_scores"]

_PUNCT = ';/[]"{}()=+\\_-><@`,?!'
_COMMA_BETWEEN_DIGITS = re.compile(r"\d,\d")
_PERIOD = re.compile(r"\.(?!\d)")
_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
_CONTRACTIONS = {
    w.replace("'", ""): w
    for w in (
        "ain't",
        "aren't",
        "can't",
        "couldn't",
        "didn't",
        "doesn't",
        "don't",
        "hadn't",
        "hasn't",
        "haven't",
        "isn't",
        "wasn't",
        "weren't",
        "won't",
        "wouldn't",
        "shouldn't",
        "mightn't",
        "mustn't",
        "i'm",
        "i've",
        "you're",
        "you've",
        "they're",
        "they've",
        "we're",
        "we've",
        "what's",
        "that's",
        "there's",
        "who's",
        "where's",
        "how's",
        "he's",
        "she's",
        "let's",
        "y'all",
        "o'clock",
    )
}


def _strip_punctuation(text: str) -> str:
    glue = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for p in _PUNCT:
        if p not in text:
            continue
        text = text.replace(p, "") if glue or f"{p} " in text or f" {p}" in text else text.replace(p, " ")
    return _PERIOD.sub("", text)


def normalize_answer(answer: str) -> str:
    """Normalise one answer string the way the official VQA evaluator does."""
    text = _strip_punctuation(answer.replace("\n", " ").replace("\t", " ").strip())
    words = []
    for word in text.lower().split():
        word = _NUMBERS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def soft_scores(human_answers: Iterable[str], normalize: bool = True) -> dict[str, float]:
    """VQA soft target: ``min(#annotators who gave the answer / 3, 1)`` per distinct answer."""
    counts = Counter(normalize_answer(a) if normalize else a for a in human_answers)
    return {answer: min(n / 3.0, 1.0) for answer, n in counts.items()}
