"""Answer-table surgery: initialise a new answer classifier from a pre-trained one by answer string.

LXMERT-style pre-training (and CLIP-ViL's) trains a QA head ``logit_fc`` over its own answer table
(``data/lxmert/all_ans.json``: ``[{"ans": "yes", "dsets": [...]}, ...]``, 9,500 answers). Fine-tuning on
VQA / GQA builds a head over the task's answers and copies, for each task answer that the table holds
after LXMERT's light normalisation (:func:`convert_answer`), that answer's row of the last layer; rows of
answers the table lacks start at zero, and the first layers (Linear, GELU, LayerNorm) are copied whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unipt.models.clipvil.weights import read_state_dict, split_checkpoint

# LXMERT's answer conversions (articles, number words, spelling), applied to the task's answers.
ANSWER_CONVERT = {
    "a man": "man", "the man": "man", "a woman": "woman", "the woman": "woman",
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "grey": "gray",
}
HEAD_LAYERS = ("0", "2", "3")  # Linear(D, 2D), [GELU], LayerNorm(2D), Linear(2D, A)


def convert_answer(answer: str) -> str:
    """LXMERT's normalisation: lower case, drop a final period and leading articles, then the table above."""
    if not answer:
        return ""
    answer = answer.lower()
    if answer.endswith("."):
        answer = answer[:-1].strip()
    for article in ("a ", "an ", "the "):  # checked in turn, as released (not exclusive)
        if answer.startswith(article):
            answer = answer[len(article):].strip()
    return ANSWER_CONVERT.get(answer, answer)


def load_answer_table(path: str | Path) -> list[str]:
    """An answer table: LXMERT's ``all_ans.json`` (``[{"ans": ...}, ...]``), a JSON list of answers (e.g. a
    fine-tuned model's ``label2ans``), or ``{"answers": [...]}`` (:class:`~unipt.data.formats.AnswerVocab`)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"answer table {file} not found (LXMERT's is data/lxmert/all_ans.json)")
    data: Any = json.loads(file.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("answers"), list):
        data = data["answers"]
    if isinstance(data, list) and all(isinstance(a, dict) and "ans" in a for a in data):
        data = [a["ans"] for a in data]
    if not isinstance(data, list) or not all(isinstance(a, str) for a in data):
        raise ValueError(f"{file} is not an answer table: expected [{{'ans': ...}}, ...] (LXMERT), a list of "
                         "strings, or {'answers': [...]}")
    return data


@dataclass
class SurgeryReport:
    """Which task answers were found in the pre-trained table (``loaded``) and which start at zero."""

    loaded: list[str] = field(default_factory=list)
    zeroed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.loaded)} answers initialised from the pre-trained QA head, {len(self.zeroed)} at zero"


@torch.no_grad()
def answer_head_surgery(head: nn.Sequential, source: dict[str, torch.Tensor], table: list[str],
                        answers: list[str]) -> SurgeryReport:
    """Fill ``head`` (``logit_fc``: Linear, GELU, LayerNorm, Linear over ``answers``) from ``source``.

    Args:
        head: the new head; its last layer has ``len(answers)`` rows.
        source: the pre-trained head's tensors, keys ``{0,2,3}.{weight,bias}`` (rows follow ``table``).
        table: the answers of the pre-trained head's rows.
        answers: the new head's answers, row by row.
    """
    expected = {f"{layer}.{p}" for layer in HEAD_LAYERS for p in ("weight", "bias")}
    if set(source) != expected:
        raise ValueError(f"the pre-trained answer head has keys {sorted(source)}; expected {sorted(expected)}")
    rows = source["3.weight"].shape[0]
    if rows != len(table):
        raise ValueError(f"the pre-trained answer head has {rows} answers but the answer table lists {len(table)}; "
                         "use the table the head was trained with (LXMERT's all_ans.json)")
    if len(answers) != head[3].out_features:
        raise ValueError(f"{len(answers)} answers for a head with {head[3].out_features} outputs")
    for layer in HEAD_LAYERS[:2]:
        for p in ("weight", "bias"):
            target = getattr(head[int(layer)], p)
            if target.shape != source[f"{layer}.{p}"].shape:
                raise ValueError(f"pre-trained answer head layer {layer}.{p} is {tuple(source[f'{layer}.{p}'].shape)}, "
                                 f"the new head's is {tuple(target.shape)} (another hidden width)")
            target.copy_(source[f"{layer}.{p}"])
    index = {answer: i for i, answer in enumerate(table)}
    report = SurgeryReport()
    last = head[3]
    for row, answer in enumerate(answers):
        found = index.get(convert_answer(answer))
        if found is None:
            last.weight[row] = 0.0
            last.bias[row] = 0.0
            report.zeroed.append(answer)
        else:
            last.weight[row] = source["3.weight"][found]
            last.bias[row] = source["3.bias"][found]
            report.loaded.append(answer)
    return report


def init_head_from_checkpoint(head: nn.Sequential, checkpoint: str, answer_table: str,
                              answers: list[str]) -> SurgeryReport:
    """Answer-table surgery from a released file: its pre-trained QA head (pre-training checkpoint) or its
    fine-tuned ``logit_fc`` (VQA / GQA checkpoint), whose rows ``answer_table`` lists."""
    parts = split_checkpoint(read_state_dict(checkpoint))
    source = parts.pretrained_answer_head or parts.head
    if not source:
        raise ValueError(f"{checkpoint} holds no answer head (answer_head.logit_fc.* or logit_fc.*) to copy from")
    report = answer_head_surgery(head, source, load_answer_table(answer_table), answers)
    if not report.loaded:
        raise ValueError(f"none of the {len(answers)} answers is in {answer_table}: is it the table the head in "
                         f"{checkpoint} was trained with?")
    return report
