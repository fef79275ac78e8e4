"""Target checks: ratios computed from given numbers, PASS / MISS / n/a decided exactly, nothing hidden."""

from __future__ import annotations

import pytest

from unipt.bench.results import BenchmarkReport, MethodResult
from unipt.bench.targets import check_targets, checks_from_dicts, format_targets

MIB = 2**20


def _row(method: str, step_ms: float, act_mib: float, metric: list[float], peak_mib: float = 10.0,
         params_mib: float = 100.0, status: str = "ok") -> MethodResult:
    return MethodResult(
        method=method, variant=method, trainable_params=1, total_params=2, saved_bytes=0,
        saved_activation_bytes=int(act_mib * MIB), gradient_bytes=0, optimizer_state_bytes=0,
        peak_bytes=int(peak_mib * MIB), step_ms=step_ms, metric_values=metric,
        parameter_bytes=int(params_mib * MIB), status=status,
    )


def _report(**unipt: float) -> BenchmarkReport:
    rows = [
        _row("frozen", 30.0, 0.1, [75.0, 77.0]),
        _row("lora", 100.0, 100.0, [81.0, 82.0], peak_mib=80.0),
        _row("lst", 60.0, 20.0, [80.5, 81.5]),
        _row("unipt", unipt.get("step", 40.0), unipt.get("act", 5.0), [80.0, 80.0], peak_mib=unipt.get("peak", 10.0)),
    ]
    return BenchmarkReport("w", "d", "cpu", rows, reference_forward_ms=50.0, metric_name="accuracy",
                           reference_peak_bytes=20 * MIB, reference_parameter_bytes=100 * MIB)


def _by_name(report: BenchmarkReport, **kwargs: object) -> dict[str, tuple[float | None, str]]:
    return {c.name: (c.value, c.status) for c in check_targets(report, **kwargs)}


def test_ratios_and_verdicts_from_given_numbers():
    checks = _by_name(_report())
    assert checks["unipt step / lora step"] == (pytest.approx(0.40), "PASS")
    assert checks["unipt step / inference-only forward"] == (pytest.approx(0.80), "PASS")
    assert checks["unipt saved activations / lora's"] == (pytest.approx(0.05), "PASS")
    # weights included on both sides: (100 + 10) / (100 + 20)
    assert checks["unipt peak / inference-only peak (weights included)"] == (pytest.approx(110 / 120), "PASS")
    assert checks["unipt accuracy > frozen's"] == (pytest.approx(4.0), "PASS")  # 80 vs 76
    assert checks["unipt accuracy > lst's"] == (pytest.approx(-1.0), "MISS")  # 80 vs 81
    assert checks["unipt accuracy within 2 points of lora's"] == (pytest.approx(-1.5), "PASS")  # 80 vs 81.5


def test_misses_are_reported_with_their_numbers():
    checks = _by_name(_report(step=46.0, act=10.5, peak=40.0))
    assert checks["unipt step / lora step"] == (pytest.approx(0.46), "MISS")
    assert checks["unipt saved activations / lora's"] == (pytest.approx(0.105), "MISS")
    assert checks["unipt peak / inference-only peak (weights included)"] == (pytest.approx(140 / 120), "MISS")
    assert checks["unipt step / inference-only forward"] == (pytest.approx(46 / 50), "PASS")
    table = format_targets(check_targets(_report(step=46.0)))
    assert "| unipt step / lora step | 0.46 | <= 0.45 | **MISS** | 46.0 ms / 100.0 ms |" in table


def test_boundaries_are_inclusive_where_the_issue_says_at_most():
    checks = _by_name(_report(step=45.0, act=10.0))
    assert checks["unipt step / lora step"][1] == "PASS"  # exactly 0.45
    assert checks["unipt saved activations / lora's"][1] == "PASS"  # exactly 10%


def test_missing_or_failed_rows_give_not_available_with_a_reason():
    report = _report()
    report.rows[1].status = "OOM"  # lora
    report.rows = [r for r in report.rows if r.method != "lst"]
    checks = {c.name: c for c in check_targets(report)}
    assert checks["unipt step / lora step"].status == "n/a"
    assert "lora" in checks["unipt step / lora step"].detail
    assert checks["unipt accuracy > lst's"].status == "n/a"
    assert checks["unipt step / inference-only forward"].status == "PASS"
    assert len(checks) == 7  # every target listed, none dropped


def test_cost_only_checks_and_json_round_trip():
    report = _report()
    checks = check_targets(report, metrics=False)
    assert len(checks) == 4
    again = checks_from_dicts([c.to_dict() for c in checks])
    assert [c.status for c in again] == [c.status for c in checks]


def test_summary_across_suites_and_rewrite(tmp_path):
    import json

    from unipt.bench.suite_report import format_target_summary, rewrite_summary

    a, b = _report(), _report(step=46.0)
    b.workload, b.metric_name = "other", "rsum"
    for r in (a, b):
        r.targets = [c.to_dict() for c in check_targets(r)]
    table = format_target_summary([a, b])
    assert "| Target | w | other |" in table
    assert "| unipt step / lora step | 0.4 **PASS** | 0.46 **MISS** |" in table
    assert "| unipt metric > lst's | -1 **MISS** | -1 **MISS** |" in table  # metric names unified
    data = {"machine": "test cpu", "command": "unipt bench suite", "elapsed_s": 60.0,
            "suites": [a.to_dict(), b.to_dict()]}
    (tmp_path / "suite.json").write_text(json.dumps(data))
    md = rewrite_summary(tmp_path).read_text()
    assert "- Machine: test cpu" in md and "- Wall time: 1.0 min for 2 suite(s)" in md and table in md
