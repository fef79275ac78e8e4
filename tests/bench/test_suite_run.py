"""The suite runner end to end on a tiny random BERT and a tiny CSV dataset, two methods.

Exercises the real path: cost measured in this process (exact accounting + interleaved timing), the
inference-only peak and each method's training in fresh spawned processes, the report and its targets.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch

from unipt.bench.isolate import IsolatedError, run_isolated
from unipt.bench.report import format_markdown
from unipt.bench.run import account_step
from unipt.bench.suite_run import SuiteOptions, run_suite
from unipt.bench.suites import SuiteSize, SuiteSpec
from unipt.bench.system_step import ReferenceForward, build_system_step, load_batch_records

WORDS = {"positive": ["great", "moving", "brilliant", "warm"], "negative": ["dull", "awful", "boring", "cold"]}


def _write_csv(root, counts=None):
    counts = counts or {"train": 16, "val": 8, "test": 8}
    for split, n in counts.items():
        with open(root / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for i in range(n):
                label = "positive" if i % 2 == 0 else "negative"
                writer.writerow([f"a {WORDS[label][i % 4]} film", label])
    return {"root": str(root)}


def _spec(root) -> SuiteSpec:
    return SuiteSpec(
        name="tiny",
        title="tiny random BERT on a CSV",
        config={
            "towers": {"text": {"backbone": "random:tiny-bert", "max_length": 12}},
            "task": {"name": "classification"},
            "data": {"dataset": "text_csv", "options": _write_csv(root)},
            "optim": {"warmup_ratio": 0.0},
        },
        methods=("frozen", "unipt"),
        metric="accuracy",
        sizes={"full": SuiteSize(16, 8, 1, 8), "quick": SuiteSize(8, 8, 1, 4)},
        options={"unipt": {"text": {"preset": "auto", "reduction": 2}}},
    )


def test_system_step_accounts_the_real_system(tmp_path):
    spec = _spec(tmp_path)
    frozen_cfg, unipt_cfg = spec.run_config("frozen"), spec.run_config("unipt")
    records, options = load_batch_records(frozen_cfg)
    assert len(records) == 8 and options == {"num_classes": 2}
    frozen = account_step(build_system_step(frozen_cfg, "frozen", records=records, task_options=options))
    unipt = account_step(build_system_step(unipt_cfg, "unipt", records=records, task_options=options))
    # the frozen probe trains only the head (D=32 -> 2 classes): its gradients are exactly the head's
    assert frozen["gradient_bytes"] == (32 * 2 + 2) * 4
    assert frozen["optimizer_state_bytes"] == 2 * frozen["gradient_bytes"] + 2 * 4  # exp_avg, exp_avg_sq, steps
    assert unipt["gradient_bytes"] > frozen["gradient_bytes"]
    assert unipt["saved_activation_bytes"] > frozen["saved_activation_bytes"] > 0
    reference = ReferenceForward(frozen_cfg, records)
    reference()
    assert reference.parameter_bytes == frozen["parameter_bytes"] - frozen["gradient_bytes"]


@pytest.mark.slow
def test_suite_runs_end_to_end_with_two_methods(tmp_path):
    (tmp_path / "data").mkdir()
    spec = _spec(tmp_path / "data")
    opts = SuiteOptions(size="full", seeds=1, repeats=1, warmup=0, memory_steps=1, work_dir=str(tmp_path / "runs"),
                        progress=False, threads=1, timeout_s=600)
    report = run_suite(spec, opts)
    assert [r.method for r in report.rows] == ["frozen", "unipt"]
    for row in report.rows:
        assert row.status == "ok", row.status
        assert len(row.metric_values) == 1 and 0.0 <= row.metric_values[0] <= 100.0
        assert row.peak_bytes is not None and row.peak_backend.startswith("cpu")
        assert row.step_ms is not None and row.parameter_bytes > 0
        assert row.extra["lr"] > 0 and len(row.extra["train_time_s"]) == 1
    rows = {r.method: r for r in report.rows}
    assert rows["frozen"].trainable_params == 0 and rows["unipt"].trainable_params > 0
    assert report.reference_forward_ms is not None and report.reference_parameter_bytes > 0
    assert report.reference_peak_bytes is not None
    # every target is listed; those needing lora/lst say why they cannot be computed
    targets = {t["name"]: t for t in report.targets}
    assert len(targets) == 7
    assert targets["unipt step / lora step"]["status"] == "n/a"
    assert targets["unipt step / inference-only forward"]["status"] in ("PASS", "MISS")
    assert targets["unipt test accuracy > frozen's"]["status"] in ("PASS", "MISS")
    assert (tmp_path / "runs" / "tiny" / "logs" / "unipt-seed0.log").is_file()
    md = format_markdown(report)
    assert "Target checks (tiny)" in md and "UniPT (preset auto" in md
    json.dumps(report.to_dict())
    # an interrupted run resumes from the saved training results (same configs), retraining nothing
    log = tmp_path / "runs" / "tiny" / "logs" / "unipt-seed0.log"
    log.unlink()
    again = run_suite(spec, SuiteOptions(**{**opts.__dict__, "resume": True}))
    assert [r.metric_values for r in again.rows] == [r.metric_values for r in report.rows]
    assert not log.exists()


def _boom(message: str) -> None:
    raise ValueError(message)


def _double(x: int) -> int:
    print("child output goes to the log")
    return 2 * x


def test_isolated_results_errors_and_logs(tmp_path):
    log = tmp_path / "child.log"
    assert run_isolated(_double, 21, log_path=log, timeout_s=120) == 42
    assert "child output goes to the log" in log.read_text()
    with pytest.raises(IsolatedError, match="ValueError: nope") as info:
        run_isolated(_boom, "nope", log_path=tmp_path / "boom.log", timeout_s=120)
    assert not info.value.out_of_memory and "Traceback" in str(info.value)


def test_children_are_spawned_where_a_cuda_gpu_is_present(monkeypatch):
    """A forked child cannot use CUDA once a preloaded import initialised it: GPUs get plain spawn."""
    from unipt.bench import isolate

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    expected = "forkserver" if "forkserver" in isolate.mp.get_all_start_methods() else "spawn"
    assert isolate._context(isolate.PRELOAD).get_start_method() == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert isolate._context(isolate.PRELOAD).get_start_method() == "spawn"
