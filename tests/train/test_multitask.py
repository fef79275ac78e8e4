"""Several tasks over one dataset and one backbone pass (``tasks:`` in a run config): each task gets its
own side network and head, the backbone runs once per batch for all of them, one activation cache serves
them all, and every task's side network is its own save_pretrained folder."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
import torch

import unipt
from unipt.backbones import PACKAGED
from unipt.train import Trainer, load_run_config
from unipt.train.caching import build_cache

_spec = importlib.util.spec_from_file_location("tiny_for_tasks", Path(__file__).parents[1] / "cache" / "tiny.py")
tiny = sys.modules.setdefault("tiny_for_tasks", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(tiny)


@pytest.fixture(autouse=True)
def tiny_bert(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PACKAGED, tiny.NAME, tiny.tiny_backbone)


TOPICS = {"film": ["film", "cast", "scene"], "book": ["book", "chapter", "author"], "game": ["game", "level", "boss"]}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Short reviews with a sentiment (``label``, 0/1) and a topic (``topic``, a name), in JSON lines."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("reviews")
    for split, n in {"train": 64, "val": 32, "test": 32}.items():
        with open(root / f"{split}.jsonl", "w") as handle:
            for i in range(n):
                label, topic = rng.randint(0, 1), sorted(TOPICS)[i % 3]
                words = rng.sample(tiny.POSITIVE if label else tiny.NEGATIVE, 2) + rng.sample(TOPICS[topic], 2)
                rng.shuffle(words)
                handle.write(json.dumps({"text": " ".join(words), "label": label, "topic": topic}) + "\n")
    return root


def config(data: Path, out: Path, **extra: object):
    """Sentiment and topic of the same reviews, from one text tower."""
    base = {
        "towers": {"text": {"backbone": tiny.NAME, "method": "unipt", "options": {"reduction": 2}}},
        "tasks": {"sentiment": {"name": "classification"},
                  "topic": {"name": "classification", "label_field": "topic", "weight": 0.5}},
        "data": {"dataset": "text_jsonl", "options": {"root": str(data), "extra_fields": ["topic"]},
                 "eval_split": "val", "test_split": "test"},
        "optim": {"lr": 1e-2, "warmup_ratio": 0.0},
        "train": {"epochs": 2, "batch_size": 16, "output_dir": str(out), "resume": False},
    }
    return load_run_config(None, [f"{k}={json.dumps(v)}" for k, v in extra.items()], base=base)


def test_two_tasks_share_one_backbone_pass(data_root, tmp_path):
    trainer = Trainer(config(data_root, tmp_path / "run"))
    text = trainer.system.towers["text"]
    assert isinstance(text, unipt.UniPTModel) and list(text.sides) == ["sentiment", "topic"]
    calls: list[int] = []
    text.backbone.register_forward_hook(lambda *_: calls.append(1))
    result = trainer.fit()

    steps = 2 * (64 // 16)
    evals = 2 * 2  # two epochs, 32 records in batches of 16
    tests = 2
    assert len(calls) == steps + evals + tests  # once per batch, for both tasks
    metrics = result.best_metrics
    assert {"sentiment/accuracy", "topic/accuracy", "mean_primary"} <= set(metrics)
    assert metrics["mean_primary"] == pytest.approx((metrics["sentiment/accuracy"] + metrics["topic/accuracy"]) / 2)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]  # the summed loss falls
    assert set(result.test_metrics) == set(metrics)
    heads = trainer.system.task.tasks
    assert heads["sentiment"].head[-1].out_features == 2 and heads["topic"].head[-1].out_features == 3
    assert trainer.data.task_labels["topic"] == ("topic", {"book": 0, "film": 1, "game": 2})
    shared = result.shared_backbone
    assert shared["tasks"] == 2 and 0 < shared["backbone_s"] < result.train_time_s
    assert shared["separate_runs_estimate_s"] == pytest.approx(result.train_time_s + shared["backbone_s"], abs=1e-2)

    best = tmp_path / "run" / "checkpoints" / "best" / "text"  # each task's side: its own save_pretrained folder
    alone = unipt.UniPTModel.from_pretrained(tiny.tiny_backbone().model, best / "topic")
    assert list(alone.sides) == ["topic"]
    both = unipt.UniPTModel.from_pretrained(tiny.tiny_backbone().model, best)
    assert list(both.sides) == ["sentiment", "topic"]


def test_one_cache_serves_every_task(data_root, tmp_path):
    live = Trainer(config(data_root, tmp_path / "live", **{"train.epochs": 1}))
    live_result = live.fit()
    cache = tmp_path / "cache"
    cached_config = config(data_root, tmp_path / "cached", **{"train.epochs": 1, "train.cache_dir": str(cache)})
    for split in ("train", "eval", "test"):
        build_cache(cached_config, cache, split, progress=False)
    cached = Trainer(cached_config)
    cached.system.towers["text"].backbone.forward = None  # the backbone must not run
    cached_result = cached.fit()
    assert cached_result.best_metrics == pytest.approx(live_result.best_metrics)
    expected, actual = live.system.trainable_state_dict(), cached.system.trainable_state_dict()
    for key in expected:
        if not key.endswith("aggregation.gate.bias"):  # cancelled by the softmax (see test_train_from_cache)
            torch.testing.assert_close(actual[key], expected[key], atol=1e-5, rtol=0, msg=key)


def test_several_tasks_need_towers_that_share_the_pass_and_known_labels(data_root, tmp_path):
    with pytest.raises(ValueError, match="cannot share its pass"):
        Trainer(config(data_root, tmp_path / "run", **{"towers.text.method": "lora", "towers.text.options": {}}))
    lines = (data_root / "val.jsonl").read_text().splitlines()
    odd = tmp_path / "odd"
    odd.mkdir()
    for split in ("train", "test"):
        (odd / f"{split}.jsonl").write_text((data_root / f"{split}.jsonl").read_text())
    (odd / "val.jsonl").write_text("\n".join([*lines, json.dumps({"text": "a film", "label": 1, "topic": "poem"})]))
    with pytest.raises(ValueError, match="val.*record 32 has topic='poem'.*never has"):
        Trainer(config(odd, tmp_path / "run"))  # refused before any training
    with pytest.raises(ValueError, match="either 'task'"):
        load_run_config(None, ["towers.text.backbone=x", "task.name=retrieval", "tasks.a.name=classification"])
