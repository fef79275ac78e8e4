"""``cache build | plan | verify`` through argparse (as ``unipt cache ...`` runs them)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from unipt.train.cache_cli import add_cache_parser, main

from . import tiny


@pytest.fixture
def config_file(data_root, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(f"towers:\n  text: {{backbone: {tiny.NAME}}}\n"
                    f"data: {{dataset: text_jsonl, options: {{root: '{data_root}'}}, eval_split: val}}\n"
                    "train: {batch_size: 16}\n")
    return path


def test_build_plan_verify(config_file, tmp_path, capsys):
    out = tmp_path / "cache"
    assert main(["plan", str(config_file), "--split", "train", "--json", "--no-padding"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert list(plan) == ["train"] and plan["train"]["records"] == 64 and plan["train"]["padding"] is False

    assert main(["build", str(config_file), "--out", str(out), "--dtype", "fp16", "--set", "data.limit_eval=10",
                 "--quiet"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["train"]["records"] == 64 and built["eval"]["records"] == 10
    assert built["train"]["folder"] == f"{out}/train"
    assert sorted(p.name for p in out.iterdir()) == ["eval", "test", "train"]
    manifest = json.loads((out / "train" / "manifest.json").read_text())
    assert manifest["storage"]["dtype"] == "fp16" and manifest["complete"]

    assert main(["verify", str(out)]) == 0
    assert [r["state"] for r in json.loads(capsys.readouterr().out)] == ["OK"] * 3
    shard = out / "eval" / "shard-00000.safetensors"
    raw = bytearray(shard.read_bytes())
    raw[-3] ^= 0xFF
    shard.write_bytes(bytes(raw))
    assert main(["verify", str(out)]) == 1
    reports = {Path(r["folder"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert reports["eval"]["state"] == "BROKEN" and reports["train"]["state"] == "OK"
    assert any("shard-00000.safetensors is corrupted" in p for p in reports["eval"]["problems"])


def test_add_cache_parser_sets_func():
    parser = argparse.ArgumentParser(prog="unipt")
    add_cache_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["cache", "build", "c.yaml", "--out", "d", "--split", "train", "--no-padding"])
    assert args.func.__name__ == "run_build" and args.no_padding and args.split == ["train"]
    assert parser.parse_args(["cache", "verify", "d"]).func.__name__ == "run_verify"
    with pytest.raises(SystemExit):
        parser.parse_args(["cache", "build", "c.yaml"])  # --out is required
