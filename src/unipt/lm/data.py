"""Language-model data: prompt/response JSONL, plain text, and Rotten Tomatoes as instructions.

Formats (``data.dataset`` in a run config):
    * ``lm_jsonl``: one JSON object per line, ``{"prompt": ..., "response": ...}`` (the loss covers the
      response and the end-of-sequence token only) or ``{"text": ...}`` (every token). Options:
      ``path`` (one file for every split) or ``root`` (a folder with ``<split>.jsonl``).
    * ``lm_text``: plain UTF-8 text, cut into blocks of ``max_length`` tokens (every token trains).
      Options: ``path`` or ``root`` (``<split>.txt``).
    * ``rotten_tomatoes_instructions``: the packaged Rotten Tomatoes reviews as instructions
      ("Is this review fresh or rotten?"), the response is the one-word answer; records keep ``label``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from unipt.data.errors import DataFormatError
from unipt.data.io import read_jsonl, require_file

IGNORE_INDEX = -100
RT_ANSWERS = ["rotten", "fresh"]  # label 0, 1 (as the packaged dataset)
RT_INSTRUCTION = "Is this movie review fresh (positive) or rotten (negative)? Answer with one word: fresh or rotten."


@dataclass
class LMRecord:
    """One example: a ``prompt`` and its ``response``, or a plain ``text`` (then ``prompt`` is empty)."""

    prompt: str
    response: str
    label: int | None = None


def load_lm_records(dataset: str, split: str, limit: int | None = None, **options: Any) -> list[LMRecord]:
    """Records of ``split`` for a ``lm_jsonl`` / ``lm_text`` / ``rotten_tomatoes_instructions`` dataset
    (at most ``limit``: the first ones of a file, a label-balanced subset of the packaged reviews)."""
    if dataset == "lm_jsonl":
        return _read_jsonl(_split_file(options, split, "jsonl"))[:limit]
    if dataset == "lm_text":
        path = require_file(_split_file(options, split, "txt"), "plain-text training file")
        return [LMRecord("", path.read_text(encoding="utf-8"))]
    if dataset == "rotten_tomatoes_instructions":
        return rotten_tomatoes_instructions(split, limit=limit, **options)
    raise ValueError(
        f"unknown language-model dataset {dataset!r}; use lm_jsonl, lm_text or rotten_tomatoes_instructions"
    )


def _split_file(options: dict[str, Any], split: str, ext: str) -> Path:
    unknown = sorted(set(options) - {"path", "root"})
    if unknown:
        raise ValueError(f"unknown data options {unknown} for a .{ext} dataset; use path= or root=")
    if options.get("path"):
        return Path(options["path"])
    if options.get("root"):
        return Path(options["root"]) / f"{split}.{ext}"
    raise ValueError(f"pass data.options.path (one .{ext} file) or data.options.root (a folder with {split}.{ext})")


def _read_jsonl(path: Path) -> list[LMRecord]:
    expected = 'a JSON object with "prompt" and "response" strings, or a "text" string'
    records = []
    for lineno, obj in read_jsonl(path, "prompt/response JSONL file", expected):
        if "text" in obj and "prompt" not in obj:
            fields = {"text": obj["text"]}
        else:
            fields = {k: obj.get(k) for k in ("prompt", "response")}
        for name, value in fields.items():
            if not isinstance(value, str) or (name != "prompt" and not value):
                raise DataFormatError(path, record=f"line {lineno}", field=name, expected=expected,
                                      problem="missing" if value is None else f"got {value!r}")
        if "text" in fields:
            records.append(LMRecord("", fields["text"]))
        else:
            records.append(LMRecord(fields["prompt"], fields["response"]))
    if not records:
        raise DataFormatError(path, problem="no records", expected=expected)
    return records


def rotten_tomatoes_instructions(split: str, limit: int | None = None, seed: int = 0) -> list[LMRecord]:
    """The packaged Rotten Tomatoes split as instructions; ``response`` is ``fresh`` or ``rotten``."""
    from unipt.data.packaged import load_rotten_tomatoes

    reviews = load_rotten_tomatoes(split, seed=seed, limit=limit)
    return [LMRecord(f"{RT_INSTRUCTION}\n\nReview: {r['text']}", RT_ANSWERS[int(r["label"])], int(r["label"]))
            for r in reviews]


# ------------------------------------------------------------------------------------------- tokens
def prompt_ids(tokenizer: Any, prompt: str, chat: bool) -> list[int]:
    """Token ids of a prompt: through the tokenizer's chat template (``chat``) or as plain text."""
    if chat:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template; set task.options.chat_template: false")
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    return tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []


class TokenizedLM(Dataset):
    """Token ids + labels (``-100`` on the prompt) for each record; plain texts cut into blocks.

    Args:
        records: from :func:`load_lm_records`.
        tokenizer: a Hugging Face tokenizer with an EOS token.
        max_length: longest example in tokens; a long prompt loses its beginning, a long response its end.
        chat: wrap prompts in the tokenizer's chat template.
    """

    def __init__(self, records: list[LMRecord], tokenizer: Any, max_length: int, chat: bool):
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; the model could never learn to stop")
        self.records, self.items = records, []
        for record in records:
            if record.prompt:
                self.items.append(self._pair(tokenizer, record, max_length, chat))
            else:
                ids = tokenizer(record.response, add_special_tokens=False)["input_ids"]
                for start in range(0, len(ids), max_length):
                    block = ids[start:start + max_length]
                    if len(block) > 1:
                        self.items.append((block, list(block)))

    @staticmethod
    def _pair(tokenizer: Any, record: LMRecord, max_length: int, chat: bool) -> tuple[list[int], list[int]]:
        prompt = prompt_ids(tokenizer, record.prompt, chat)
        response = tokenizer(record.response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        response = response[: max(1, max_length // 2)] if len(response) > max_length // 2 else response
        prompt = prompt[-(max_length - len(response)):] if len(prompt) + len(response) > max_length else prompt
        return prompt + response, [IGNORE_INDEX] * len(prompt) + response

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[list[int], list[int]]:
        return self.items[index]


def collate_right_padded(items: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask``, ``labels`` ``[B, L]``, padded on the right (training, scoring)."""
    longest = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(items), longest), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(items), longest), dtype=torch.long)
    for i, (tokens, targets) in enumerate(items):
        ids[i, : len(tokens)] = torch.tensor(tokens)
        labels[i, : len(targets)] = torch.tensor(targets)
        mask[i, : len(tokens)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def left_padded_prompts(prompts: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` / ``attention_mask`` for generation (padding on the left)."""
    longest = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for i, tokens in enumerate(prompts):
        ids[i, longest - len(tokens):] = torch.tensor(tokens)
        mask[i, longest - len(tokens):] = 1
    return {"input_ids": ids, "attention_mask": mask}
