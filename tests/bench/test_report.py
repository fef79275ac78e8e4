"""Reports: Markdown table (variants, ratios, metric), JSON round trip, PNG figures."""

from __future__ import annotations

import json

import pytest

from unipt.bench.report import format_markdown, load_report, plot_scaling, write_report
from unipt.bench.results import BenchmarkReport, MethodResult, ScalingPoint, ScalingReport

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIB = 2**20


def _row(method: str, variant: str, peak_mib: float, step_ms: float, metric: list[float]) -> MethodResult:
    return MethodResult(
        method=method,
        variant=variant,
        trainable_params=1000,
        total_params=10_000,
        saved_bytes=4000,
        saved_activation_bytes=2 * MIB,
        gradient_bytes=4000,
        optimizer_state_bytes=8008,
        peak_bytes=int(peak_mib * MIB),
        peak_backend="cpu-vmhwm",
        step_ms=step_ms,
        step_q25_ms=step_ms * 0.9,
        step_q75_ms=step_ms * 1.1,
        metric_values=metric,
    )


def _report() -> BenchmarkReport:
    return BenchmarkReport(
        workload="bert-d64-l2",
        description="random BERT",
        device="cpu",
        rows=[
            _row("full", "full fine-tuning (all parameters)", 200.0, 30.0, [0.80, 0.84]),
            _row("lst", "LST (random-init side network, no pruning init)", 100.0, 12.0, [0.70, 0.72]),
            _row("unipt", "UniPT", 50.0, 10.0, [0.78, 0.80]),
        ],
        reference_forward_ms=4.0,
        metric_name="accuracy",
        notes=["metrics are illustrative"],
    )


def test_markdown_table():
    md = format_markdown(_report())
    assert "| Method | Variant | Trainable params |" in md
    assert "LST (random-init side network, no pruning init)" in md
    assert "| 4.00× / 3.00× |" in md  # full vs UniPT: peak 200/50, step 30/10
    assert "| 1.00× / 1.00× |" in md
    assert "0.82 ± 0.028 (n=2)" in md
    assert "inference-only backbone forward" in md and "4.00 ms" in md
    assert "- metrics are illustrative" in md


def test_markdown_without_reference_or_metrics():
    report = _report()
    report.rows = [r for r in report.rows if r.method != "unipt"]
    for r in report.rows:
        r.metric_values = []
    md = format_markdown(report)
    assert "No `unipt` row" in md and "| — / — | — |" in md


def test_write_report_files(tmp_path):
    paths = write_report(_report(), tmp_path)
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC
    assert paths["markdown"].read_text().startswith("### bert-d64-l2")
    data = json.loads(paths["json"].read_text())
    assert data["rows"][0]["metric_mean"] == pytest.approx(0.82)
    again = load_report(paths["json"])
    assert again.rows[1].variant == "LST (random-init side network, no pruning init)"
    assert again.rows[2].metric_values == [0.78, 0.80]


def test_png_without_metrics_or_peaks(tmp_path):
    report = _report()
    for r in report.rows:
        r.metric_values, r.peak_bytes = [], None
    assert write_report(report, tmp_path, stem="bare")["png"].read_bytes()[:8] == PNG_MAGIC


def test_scaling_plot(tmp_path):
    scaling = ScalingReport(
        x_name="depth",
        workload="bert",
        device="cpu",
        points=[
            ScalingPoint(m, d, int(d * k * MIB), d * k, int(d * MIB))
            for m, k in [("full", 3.0), ("unipt", 1.0)]
            for d in (2, 4, 8)
        ],
    )
    assert scaling.methods() == ["full", "unipt"]
    out = plot_scaling(scaling, tmp_path / "scaling.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert ScalingReport.from_dict(scaling.to_dict()) == scaling
