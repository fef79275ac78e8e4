"""A tiny random BERT with a tokenizer-free text pipeline and a synthetic sentiment dataset (JSONL), so cache
and distributed tests run in seconds through the normal run-config path (``towers.text.backbone=tiny-bert``)."""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unipt.backbones import PACKAGED, Backbone
from unipt.train import RunConfig, load_run_config

NAME = "tiny-bert"
POSITIVE = ["good", "great", "fun", "moving", "sharp", "warm"]
NEGATIVE = ["bad", "dull", "flat", "weak", "slow", "messy"]
FILLER = ["the", "film", "a", "plot", "cast", "is", "very", "and", "story", "quite"]


@dataclass
class HashTokenizer:
    """Words -> ids ``2 + crc32(word) % (vocab_size - 2)`` after a ``[CLS]`` id 1; pads with 0 to the longest.

    Returns ``input_ids`` / ``attention_mask`` ``[B, L]`` like a Hugging Face tokenizer."""

    vocab_size: int = 100
    max_length: int = 12

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        rows = [[1] + [2 + zlib.crc32(w.lower().encode()) % (self.vocab_size - 2) for w in t.split()] for t in texts]
        rows = [r[: self.max_length] for r in rows]
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def tiny_backbone(seed: int = 0, **_: Any) -> Backbone:
    """BertModel(hidden 32, 2 layers, 2 heads, vocab 100), weights from ``seed`` (global RNG untouched)."""
    from transformers import BertConfig, BertModel

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            vocab_size=100, max_position_embeddings=32)
        model = BertModel(config, add_pooling_layer=False)
    return Backbone(NAME, model, "text", HashTokenizer())


def register() -> None:
    """Make ``tiny-bert`` loadable by name (tests: use ``monkeypatch.setitem(PACKAGED, ...)`` instead)."""
    PACKAGED[NAME] = tiny_backbone


def write_data(root: Path, sizes: dict[str, int] | None = None, seed: int = 0, varied: bool = True) -> Path:
    """``root/{train,val,test}.jsonl`` of short reviews; label 1 when positive words win.

    ``varied=False`` makes every text 6 words long (so every record has the same number of tokens)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (sizes or {"train": 64, "val": 24, "test": 24}).items():
        with open(root / f"{split}.jsonl", "w") as handle:
            for _ in range(n):
                label = rng.randint(0, 1)
                fillers = rng.randint(1, 7) if varied else 4
                words = rng.sample(POSITIVE if label else NEGATIVE, 2) + rng.sample(FILLER, fillers)
                rng.shuffle(words)
                handle.write(json.dumps({"text": " ".join(words), "label": label}) + "\n")
    return root


def overrides(data_root: Path, out: Path, **extra: Any) -> list[str]:
    """Overrides of a small classification run on the tiny data (2 epochs x 4 steps of 16)."""
    values = {
        "towers.text.backbone": NAME, "task.name": "classification", "data.dataset": "text_jsonl",
        "data.options.root": str(data_root), "data.eval_split": "val", "data.test_split": "test",
        "train.epochs": 2, "train.batch_size": 16, "train.output_dir": str(out), "train.resume": False,
        "optim.lr": 0.01, "optim.warmup_ratio": 0.0, "optim.grad_clip": 1.0,
    }
    values.update(extra)
    return [f"{k}={json.dumps(v) if isinstance(v, str | type(None)) else v}" for k, v in values.items()]


def config(data_root: Path, out: Path, **extra: Any) -> RunConfig:
    return load_run_config(None, overrides(data_root, out, **extra))
