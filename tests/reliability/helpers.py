"""Tiny real-format fixtures for the reliability suite: a 2-layer random BERT with a word-hash tokenizer
(registered as a packaged backbone name), small CSV / image-folder datasets, and a CLI runner that keeps
stdout, stderr and the exit code apart."""

from __future__ import annotations

import contextlib
import csv
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image

from unipt.backbones import Backbone
from unipt.train import RunConfig

BACKBONE = "reliability-tiny-bert"
POISONED = "reliability-tiny-bert-poisoned"  # the word POISON_WORD embeds to NaN
POISON_WORD = "zebra"
VOCAB = 64

POSITIVE = ["a good film", "great and fun", "a warm moving story", "sharp fun cast", "good warm plot",
            "fun and great"]
NEGATIVE = ["a bad film", "dull and flat", "a weak slow story", "messy flat cast", "bad slow plot",
            "weak and dull"]


def word_id(word: str) -> int:
    return 2 + zlib.crc32(word.lower().encode()) % (VOCAB - 2)


@dataclass
class WordTokenizer:
    """``[CLS]`` id 1, then one hashed id per word; padded with 0 to the longest text: ``input_ids`` /
    ``attention_mask`` ``[B, L]`` as a Hugging Face tokenizer returns them."""

    max_length: int = 12

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        rows = [([1] + [word_id(w) for w in str(t).split()])[: self.max_length] for t in texts]
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def tiny_bert(poisoned: bool = False, **_: Any) -> Backbone:
    """BertModel(hidden 32, 2 layers), fixed seed; ``poisoned``: the embedding of POISON_WORD is NaN, so a
    record containing it gives non-finite activations, as a corrupted input would."""
    from transformers import BertConfig, BertModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=VOCAB, max_position_embeddings=32),
                          add_pooling_layer=False)
    if poisoned:
        with torch.no_grad():
            model.embeddings.word_embeddings.weight[word_id(POISON_WORD)] = float("nan")
    return Backbone(POISONED if poisoned else BACKBONE, model, "text", WordTokenizer())


def write_csv(path: Path, rows: list[tuple[str, Any]], header: tuple[str, str] = ("text", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sentiment_rows(count: int, offset: int = 0, labels: tuple[str, str] = ("neg", "pos")) -> list[tuple[str, str]]:
    """``count`` rows alternating negative / positive."""
    rows = []
    for k in range(count):
        i = (offset + k // 2) % len(POSITIVE)
        rows.append((NEGATIVE[i], labels[0]) if k % 2 == 0 else (POSITIVE[i], labels[1]))
    return rows


def write_text_splits(root: Path, splits: dict[str, list[tuple[str, Any]]]) -> dict[str, Any]:
    """``root/<split>.csv`` for each split; returns the ``data.options`` that read them."""
    for split, rows in splits.items():
        write_csv(root / f"{split}.csv", rows)
    return {"root": str(root)}


def write_image_folder(root: Path, classes: dict[str, int]) -> Path:
    """``root/<class>/<n>.png``: solid-colour 16 x 16 images, ``classes = {name: count}``."""
    colours = [(200, 30, 30), (30, 30, 200), (30, 200, 30)]
    for c, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            colour = tuple(min(255, v + 5 * k) for v in colours[c % 3])
            Image.new("RGB", (16, 16), colour).save(root / name / f"{k}.png")
    return root


def text_config(data_options: dict[str, Any], output_dir: Path, *, epochs: int = 1, batch_size: int = 4,
                backbone: str = BACKBONE, test_split: str | None = "test", **train: Any) -> dict[str, Any]:
    """A classification run config (as a dict) over ``text_csv`` data with the tiny BERT."""
    return {
        "towers": {"text": {"backbone": backbone, "method": "unipt", "options": {"reduction": 2}}},
        "task": {"name": "classification"},
        "data": {"dataset": "text_csv", "options": data_options, "train_split": "train", "eval_split": "val",
                 "test_split": test_split},
        "optim": {"lr": 5e-3, "warmup_ratio": 0.0, "schedule": "constant"},
        "train": {"epochs": epochs, "batch_size": batch_size, "output_dir": str(output_dir), **train},
    }


def run_config(data: dict[str, Any]) -> RunConfig:
    return RunConfig.from_dict(data)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """stderr lines that are not progress-bar noise."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(argv: list[str]) -> CliResult:
    """``unipt <argv>`` in this process."""
    from unipt.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return CliResult(code, out.getvalue(), err.getvalue())


def write_config(tmp_path: Path, **changes: Any) -> Path:
    """A valid run config YAML over tiny CSV data; ``changes`` replace whole sections' keys."""
    options = write_text_splits(tmp_path / "data", {"train": sentiment_rows(8), "val": sentiment_rows(4)})
    data = text_config(options, tmp_path / "run", test_split=None)
    for section, values in changes.items():
        data[section] = {**data[section], **values}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def assert_one_line_error(result: CliResult, command: str, *phrases: str) -> str:
    """Exit code 2, no traceback, exactly one ``unipt <command>: error:`` line holding every phrase."""
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.error_lines if line.startswith(f"unipt {command}: error: ")]
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]
