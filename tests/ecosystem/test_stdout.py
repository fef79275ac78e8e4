"""Standard output is the result and nothing else: every command's stdout parses as JSON (or is the
Markdown table asked for), while logs, progress bars and library chatter go to standard error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cache import tiny
from unipt.cli import main
from workflows import fixtures

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> tuple[str, str]:
    assert main(list(argv)) == code
    captured = capsys.readouterr()
    return captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0):
    out, _ = run(capsys, *argv, "--format", "json", code=code)
    return json.loads(out)


def config_file(data_root: Path, folder: Path) -> Path:
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump({
        "towers": {"text": {"backbone": tiny.NAME}}, "task": {"name": "classification"},
        "data": {"dataset": "text_jsonl", "options": {"root": str(data_root)}, "eval_split": "val"},
        "train": {"epochs": 3, "batch_size": 16, "output_dir": str(folder / "unused")}}))
    return path


def test_train_eval_predict_print_only_their_result(data_root: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "run"
    cfg = config_file(data_root, tmp_path)
    # several overrides after one --set, and a repeated --set
    result, err = run(capsys, "train", str(cfg), "--set", "train.epochs=1", "train.max_steps_per_epoch=2",
                      "--set", f"train.output_dir={out_dir}", "--format", "json")
    summary = json.loads(result)
    assert summary["trainable_parameters"] > 0 and set(summary["test_metrics"]) == {"accuracy", "macro_f1"}
    assert "epoch 1: train_loss=" in err  # the loop's log line went to stderr
    saved = yaml.safe_load((out_dir / "run_config.yaml").read_text())
    assert saved["train"]["epochs"] == 1 and saved["train"]["max_steps_per_epoch"] == 2

    metrics = run_json(capsys, "eval", str(out_dir))
    assert metrics == pytest.approx(summary["test_metrics"])
    md, _ = run(capsys, "eval", str(out_dir), "--format", "md")
    assert md.startswith("| key | value |\n|---|---|\n| accuracy |")

    predictions = run_json(capsys, "predict", str(out_dir), "--text", "good warm film", "--text", "dull film")
    assert [p["input"] for p in predictions] == ["good warm film", "dull film"]
    md, _ = run(capsys, "predict", str(out_dir), "--text", "good warm film", "--format", "md")
    assert md.startswith("### good warm film\n\n#### top\n\n| label | p |")


def test_presets_cache_and_bench_print_json(data_root: Path, tmp_path: Path, capsys) -> None:
    presets = run_json(capsys, "presets")
    assert set(presets) == {"auto", "vse_text", "vse_cnn", "clip4clip", "clipvil", "mdetr"}
    assert presets["clipvil"]["fusion"] == "mlp_norm"

    cfg = config_file(data_root, tmp_path)
    plan = run_json(capsys, "cache", "plan", str(cfg), "--split", "train")
    assert plan["train"]["records"] == 64 and plan["train"]["estimated_mb"] > 0
    md, _ = run(capsys, "cache", "plan", str(cfg), "--split", "train")  # Markdown by default
    assert md.startswith("**split train**: 64 records")
    cache = tmp_path / "cache"
    built = run_json(capsys, "cache", "build", str(cfg), "--out", str(cache), "--split", "train", "--quiet")
    assert built["train"]["records"] == 64
    assert [r["state"] for r in run_json(capsys, "cache", "verify", str(cache))] == ["OK"]

    tiny_sizes = ["--hidden", "16", "--heads", "2", "--seq-len", "8", "--repeats", "1", "--warmup", "0",
                  "--no-memory", "--no-progress", "--methods", "frozen,unipt"]
    micro = run_json(capsys, "bench", "micro", "--layers", "1", "--batch-size", "2", *tiny_sizes,
                     "--out", str(tmp_path / "micro"))
    assert [row["method"] for row in micro["rows"]] == ["frozen", "unipt"]
    scaling = run_json(capsys, "bench", "scaling", "--depths", "1,2", "--batches", "2", "--layers", "1", *tiny_sizes,
                       "--out", str(tmp_path / "scaling"))
    assert [sweep["x_name"] for sweep in scaling["sweeps"]] == ["depth", "batch"]
    md, _ = run(capsys, "bench", "micro", "--layers", "1", "--batch-size", "2", *tiny_sizes,
                "--out", str(tmp_path / "micro"))
    assert "| frozen |" in md and not md.lstrip().startswith("{")


def test_bad_overrides_name_the_key_and_the_type(data_root: Path, tmp_path: Path, capsys) -> None:
    cfg = config_file(data_root, tmp_path)
    _, err = run(capsys, "train", str(cfg), "--set", "train.epochs=three", code=2)
    assert "train.epochs must be an integer, got 'three'" in err
    _, err = run(capsys, "train", str(cfg), "--set", "optim.schedule=fast", code=2)
    assert "optim.schedule must be one of 'cosine', 'linear', 'step', 'constant'" in err
    with pytest.raises(SystemExit):  # argparse: a positional after --set is not an override
        main(["train", "--set", "train.epochs=1", str(cfg)])
    assert "is not KEY=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_pipe_gets_json_while_the_efficientnet_package_chatters(tmp_path: Path) -> None:
    """``unipt cache plan ... | json.loads`` in a separate process: the EfficientNet package prints
    'Loaded pretrained weights' while loading; it must arrive on stderr, not in the pipe."""
    pytest.importorskip("efficientnet_lite_pytorch")
    options = fixtures.write_imagefolder(tmp_path / "shapes", counts={"train": 4, "val": 2})
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "towers": {"image": {"backbone": "efficientnet-lite0", "method": "unipt"}},
        "task": {"name": "classification"},
        "data": {"dataset": "imagefolder", "options": options, "test_split": None},
        "train": {"batch_size": 2}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "unipt.cli", "cache", "plan", str(cfg), "--split", "train",
                           "--format", "json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    plan = json.loads(done.stdout)
    assert plan["train"]["records"] == 4
    assert "Loaded pretrained weights for efficientnet-lite0" in done.stderr
