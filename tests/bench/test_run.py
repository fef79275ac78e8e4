"""End to end: run_benchmark on a tiny BERT (no isolated memory: that is covered in test_memory)."""

from __future__ import annotations

import pytest

from unipt.bench.report import format_markdown, write_report
from unipt.bench.run import REFERENCE, run_benchmark, run_scaling
from unipt.bench.workload import tiny_bert_workload

WORKLOAD = tiny_bert_workload(hidden=32, layers=2, heads=2, seq_len=8, batch_size=4)


def _unipt_available() -> bool:
    try:
        import unipt

        return hasattr(unipt, "get_unipt_model")
    except ImportError:
        return False


def test_benchmark_rows_and_report(tmp_path):
    methods = ["frozen", "lora", "lst"] + (["unipt"] if _unipt_available() else [])
    report = run_benchmark(
        WORKLOAD,
        methods,
        repeats=2,
        warmup=1,
        measure_memory=False,
        progress=False,
        metrics={"lst": [0.5, 0.7]},
        metric_name="accuracy",
    )
    assert [r.method for r in report.rows] == methods
    rows = {r.method: r for r in report.rows}
    assert rows["frozen"].trainable_params == 0 and rows["frozen"].saved_bytes == 0
    assert rows["lora"].trainable_params == 2 * 2 * 8 * (32 + 32)  # r=8, two targets in two layers
    assert rows["lst"].variant == "LST (random-init side network, no pruning init)"
    assert rows["lst"].metric_mean == pytest.approx(0.6)
    assert rows["frozen"].saved_activation_bytes < rows["lst"].saved_activation_bytes
    assert all(r.step_ms is not None and r.peak_bytes is None for r in report.rows)
    assert report.reference_forward_ms is not None
    md = format_markdown(report)
    assert "LST (random-init side network, no pruning init)" in md and REFERENCE not in md
    assert write_report(report, tmp_path)["png"].exists()


def test_scaling_over_depth():
    scaling = run_scaling(
        lambda depth: tiny_bert_workload(hidden=32, layers=depth, seq_len=8, batch_size=4),
        [1, 2],
        ["frozen", "lst"],
        x_name="depth",
        repeats=1,
        warmup=0,
        measure_memory=False,
        progress=False,
    )
    lst = sorted((p for p in scaling.points if p.method == "lst"), key=lambda p: p.x)
    assert [p.x for p in lst] == [1.0, 2.0]
    assert lst[1].saved_activation_bytes > lst[0].saved_activation_bytes  # LST's chain grows with depth
