"""The issue's targets, checked as measured ratios from one report: PASS / MISS with the number.

A target whose inputs are missing (a method not run, an OOM, no metric) is reported as ``n/a`` with the
reason, never dropped. Nothing here loosens a target: thresholds are the issue's.

* UniPT step time <= 0.45 x LoRA's, and <= 1.2 x the backbone's inference-only forward.
* UniPT saved-activation bytes <= 10% of LoRA's.
* UniPT peak training memory within 15% of the inference-only peak (weights included on both sides:
  ``parameter_bytes + peak above the loaded model``; the ratio of the deltas alone is shown beside it).
* UniPT metric above ``frozen`` and ``lst``, and at most 2 points below ``lora``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from unipt.bench.results import BenchmarkReport, MethodResult

MIB = float(2**20)


@dataclass
class TargetCheck:
    """One target: ``value`` compared with ``threshold`` (``<=`` or ``>=``); ``status`` PASS/MISS/n/a."""

    name: str
    value: float | None
    threshold: float
    comparison: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, value: float | None, threshold: float, comparison: str, detail: str,
           missing: str = "") -> TargetCheck:
    if value is None:
        return TargetCheck(name, None, threshold, comparison, "n/a", missing or detail)
    passed = value <= threshold if comparison == "<=" else value >= threshold
    return TargetCheck(name, value, threshold, comparison, "PASS" if passed else "MISS", detail)


def _usable(row: MethodResult | None) -> bool:
    return row is not None and row.status == "ok"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _need(report: BenchmarkReport, *methods: str) -> str:
    """Why a check cannot be computed ('' when all rows exist and ran)."""
    bad = [m for m in methods if not _usable(report.row(m))]
    return f"no usable row for {', '.join(bad)}" if bad else ""


def check_targets(report: BenchmarkReport, method: str = "unipt", lora: str = "lora",
                  metric_margin: float = 2.0, metrics: bool = True) -> list[TargetCheck]:
    """Every target of the issue for ``method`` (UniPT) against ``lora``, ``frozen``, ``lst`` and the reference.

    ``metrics=False`` leaves out the three accuracy targets (cost-only runs such as the GPU script).
    """
    u, lo = report.row(method), report.row(lora)
    checks: list[TargetCheck] = []

    missing = _need(report, method, lora)
    step = _ratio(u.step_ms, lo.step_ms) if not missing and u and lo else None
    checks.append(_check(
        f"{method} step / {lora} step", step, 0.45, "<=",
        f"{u.step_ms:.1f} ms / {lo.step_ms:.1f} ms" if step is not None else "", missing or "no step time"))

    missing = _need(report, method) or ("" if report.reference_forward_ms else "no inference reference")
    step = _ratio(u.step_ms, report.reference_forward_ms) if not missing and u else None
    checks.append(_check(
        f"{method} step / inference-only forward", step, 1.2, "<=",
        f"{u.step_ms:.1f} ms / {report.reference_forward_ms:.1f} ms" if step is not None else "", missing))

    missing = _need(report, method, lora)
    act = _ratio(u.saved_activation_bytes, lo.saved_activation_bytes) if not missing and u and lo else None
    checks.append(_check(
        f"{method} saved activations / {lora}'s", act, 0.10, "<=",
        f"{u.saved_activation_bytes / MIB:.2f} MiB / {lo.saved_activation_bytes / MIB:.2f} MiB"
        if act is not None else "", missing))

    ref_total = report.reference_total_bytes
    missing = _need(report, method) or ("" if ref_total else "no inference-only peak reading")
    total = u.peak_total_bytes if u and not missing else None
    peak = _ratio(total, ref_total)
    delta = _ratio(u.peak_bytes, report.reference_peak_bytes) if peak is not None and u else None
    checks.append(_check(
        f"{method} peak / inference-only peak (weights included)", peak, 1.15, "<=",
        f"{(total or 0) / MIB:.1f} MiB / {(ref_total or 0) / MIB:.1f} MiB; above the loaded weights: "
        f"{(u.peak_bytes or 0) / MIB:.1f} / {(report.reference_peak_bytes or 0) / MIB:.1f} MiB"
        + (f" = {delta:.2f}x" if delta is not None else "")
        if peak is not None else "",
        missing or "no peak reading for the method"))

    if not metrics:
        return checks
    metric = report.metric_name or "metric"
    for other, margin, label in (("frozen", 0.0, "above"), ("lst", 0.0, "above"), (lora, -metric_margin, "within")):
        checks.append(_metric_check(report, method, other, margin, label, metric))
    return checks


def _metric_check(report: BenchmarkReport, method: str, other: str, margin: float, label: str,
                  metric: str) -> TargetCheck:
    """``mean(method) - mean(other)`` must be ``> 0`` (above) or ``>= -margin`` (within ``margin``)."""
    u, o = report.row(method), report.row(other)
    missing = _need(report, method, other)
    if not missing and (u.metric_mean is None or o.metric_mean is None):
        missing = "no metric"
    name = (f"{method} {metric} > {other}'s" if label == "above"
            else f"{method} {metric} within {-margin:g} points of {other}'s")
    if missing:
        return TargetCheck(name, None, margin, ">", "n/a", missing)
    diff = u.metric_mean - o.metric_mean
    detail = f"{u.metric_mean:.2f} vs {o.metric_mean:.2f} (n={len(u.metric_values)}/{len(o.metric_values)} seeds)"
    passed = diff > margin if label == "above" else diff >= margin
    return TargetCheck(name, diff, margin, ">" if label == "above" else ">=", "PASS" if passed else "MISS", detail)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def format_targets(checks: list[TargetCheck], title: str = "Target checks") -> str:
    """A Markdown table of the checks (value, threshold, PASS/MISS/n/a, the numbers behind it)."""
    lines = [f"#### {title}", "", "| Target | Measured | Needs | Result | From |", "|---|---:|---:|---|---|"]
    for c in checks:
        lines.append(f"| {c.name} | {_fmt(c.value)} | {c.comparison} {c.threshold:g} | **{c.status}** | {c.detail} |")
    return "\n".join(lines) + "\n"


def checks_from_dicts(items: list[dict[str, Any]]) -> list[TargetCheck]:
    """Rebuild checks stored in a report's JSON."""
    return [TargetCheck(**item) for item in items]
