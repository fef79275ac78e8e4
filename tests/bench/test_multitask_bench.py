"""``unipt bench multitask`` times an epoch of a multi-task run and one epoch per task alone (tiny data)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from unipt.backbones import PACKAGED
from unipt.bench.cli import build_parser
from unipt.bench.multitask import benchmark_multitask, single_task_config
from unipt.train import load_run_config

_spec = importlib.util.spec_from_file_location("tiny_for_mt_bench", Path(__file__).parents[1] / "cache" / "tiny.py")
tiny = sys.modules.setdefault("tiny_for_mt_bench", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(tiny)


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setitem(PACKAGED, tiny.NAME, tiny.tiny_backbone)
    root = tiny.write_data(tmp_path / "data", {"train": 32, "val": 8, "test": 8})
    for split in ("train", "val", "test"):  # a second label: short or long review
        lines = [json.loads(line) for line in (root / f"{split}.jsonl").read_text().splitlines()]
        (root / f"{split}.jsonl").write_text("\n".join(
            json.dumps({**r, "length": "long" if len(r["text"].split()) > 5 else "short"}) for r in lines))
    frozen = {"backbone": tiny.NAME, "method": "frozen", "field": "text"}
    base = {"towers": {"text": {"backbone": tiny.NAME}, "other": frozen},
            "tasks": {"sentiment": {"name": "classification", "towers": ["text"]},
                      "length": {"name": "classification", "label_field": "length"}},
            "data": {"dataset": "text_jsonl", "options": {"root": str(root), "extra_fields": ["length"]},
                     "eval_split": "val"},
            "train": {"output_dir": str(tmp_path / "run")}}
    return load_run_config(None, [], base=base)


def test_multitask_epoch_against_one_epoch_per_task(config):
    alone = single_task_config(config, "sentiment")
    assert list(alone.tasks) == ["sentiment"] and list(alone.towers) == ["text"]  # only the towers it reads
    result = benchmark_multitask(config, records=32, batch_size=16, repeats=1, verbose=False)
    assert result["tasks"] == ["sentiment", "length"] and set(result["separate"]) == {"sentiment", "length"}
    assert result["multitask"]["steps"] == 2 and all(t["steps"] == 2 for t in result["separate"].values())
    total = sum(t["epoch_s"] for t in result["separate"].values())
    assert result["separate_total_s"] == pytest.approx(total, abs=1e-3)
    assert result["time_saved"] == pytest.approx(1 - result["multitask"]["epoch_s"] / total, abs=1e-3)


def test_the_command_is_wired():
    args = build_parser().parse_args(["bench", "multitask", "c.yaml", "--records", "64", "--repeats", "1"])
    assert args.records == 64 and args.repeats == 1 and callable(args.func)
