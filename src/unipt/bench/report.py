"""Turn benchmark results into a Markdown table, JSON and PNG figures (matplotlib, Agg backend).

Sizes are printed in MiB (2**20 bytes). Every table prints each method's ``variant`` so simplified
baselines (e.g. LST without its pruning initialisation) are never mistaken for the paper's versions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unipt.bench.results import BenchmarkReport, MethodResult, ScalingReport
from unipt.bench.targets import checks_from_dicts, format_targets

MIB = float(2**20)


def _mib(n: int | None) -> str:
    return "—" if n is None else f"{n / MIB:.2f}"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "—"
    return f"{value / reference:.2f}×"


def _metric(row: MethodResult) -> str:
    if row.metric_mean is None:
        return "—"
    return f"{row.metric_mean:.4g} ± {row.metric_std:.2g} (n={len(row.metric_values)})"


def _cell(row: MethodResult, text: str) -> str:
    """A measurement cell, or the row's status (``OOM``, ``error``) where the measurement is missing."""
    if text == "—" and row.status != "ok":
        return row.status if len(row.status) <= 24 else row.status[:21] + "..."
    return text


def format_markdown(report: BenchmarkReport) -> str:
    """The benchmark as a Markdown table with a header, footnotes and (if computed) the target checks."""
    ref = report.row(report.reference_method)
    metric = report.metric_name or "metric"
    lines = [
        f"### {report.workload} on {report.device}",
        "",
        report.description,
        "",
        f"| Method | Variant | Trainable params | Saved (MiB) | Saved act. (MiB) | Grads + AdamW (MiB) "
        f"| Peak (MiB) | Step (ms) | Peak / step vs {report.reference_method} | {metric} (mean ± std) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report.rows:
        step = "—" if r.step_ms is None else f"{r.step_ms:.1f}"
        vs = (
            f"{_ratio(r.peak_bytes, ref.peak_bytes if ref else None)} / "
            f"{_ratio(r.step_ms, ref.step_ms if ref else None)}"
        )
        grads = _mib(r.gradient_bytes + r.optimizer_state_bytes) if r.status == "ok" else "—"
        lines.append(
            f"| {r.method} | {r.variant} | {r.trainable_params:,} | {_mib(r.saved_bytes)} "
            f"| {_cell(r, _mib(r.saved_activation_bytes) if r.status == 'ok' else '—')} | {grads} "
            f"| {_cell(r, _mib(r.peak_bytes))} | {_cell(r, step)} | {vs} | {_cell(r, _metric(r))} |"
        )
    lines.append("")
    if report.reference_forward_ms is not None:
        lines.append(
            f"Physical reference: inference-only backbone forward (`torch.inference_mode`, same "
            f"batch) = {report.reference_forward_ms:.2f} ms"
            + (
                f"; its peak {_mib(report.reference_peak_bytes)} MiB above {_mib(report.reference_parameter_bytes)} "
                f"MiB of weights."
                if report.reference_peak_bytes is not None
                else "."
            )
        )
    backends = sorted({r.peak_backend for r in report.rows if r.peak_backend})
    lines += [
        "Trainable params exclude the shared task head; saved activations, gradients and optimizer state "
        "include it.",
        f"Peak = peak training memory above the loaded model ({', '.join(backends) or 'not measured'}; CPU: "
        f"resident set, one fresh process per method; CUDA: max_memory_allocated). Step = median of "
        f"interleaved steps.",
    ]
    if report.elapsed_s is not None:
        lines.append(f"Wall time of this suite: {report.elapsed_s / 60:.1f} min.")
    if ref is None:
        lines.append(f"No `{report.reference_method}` row: ratios not available.")
    lines += [f"- {note}" for note in report.notes]
    if report.targets:
        lines += ["", format_targets(checks_from_dicts(report.targets), f"Target checks ({report.workload})")]
    return "\n".join(lines) + "\n"


def write_json(report: BenchmarkReport | ScalingReport, path: str | Path) -> Path:
    """Write ``report`` as indented JSON; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_dict(), indent=2))
    return out


def load_report(path: str | Path) -> BenchmarkReport:
    """Read a :class:`BenchmarkReport` written by :func:`write_json`."""
    return BenchmarkReport.from_dict(json.loads(Path(path).read_text()))


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder created), close it, and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    _pyplot().close(fig)
    return out


def plot_report(report: BenchmarkReport, path: str | Path) -> Path:
    """Two panels: peak memory vs metric (scatter, std error bars) and step-time bars; writes a PNG.

    Without metrics the left panel plots peak memory against trainable parameters instead, and
    without peak readings it uses the exact saved-activation bytes.
    """
    plt = _pyplot()
    rows = report.rows
    use_peak = all(r.peak_bytes is not None for r in rows)
    mem = [(r.peak_bytes if use_peak else r.saved_activation_bytes) / MIB for r in rows]  # type: ignore[operator]
    has_metric = any(r.metric_mean is not None for r in rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r, x in zip(rows, mem, strict=True):
        if has_metric:
            if r.metric_mean is None:
                continue
            left.errorbar(x, r.metric_mean, yerr=r.metric_std, fmt="o", capsize=3)
            left.annotate(r.method, (x, r.metric_mean), textcoords="offset points", xytext=(4, 4))
        else:
            left.scatter(x, max(r.trainable_params, 1))
            left.annotate(
                r.method, (x, max(r.trainable_params, 1)), textcoords="offset points", xytext=(4, 4)
            )
    left.set_xlabel(("peak training memory" if use_peak else "saved activations") + " (MiB)")
    if has_metric:
        left.set_ylabel(report.metric_name or "metric")
    else:
        left.set_ylabel("trainable parameters (no metric given; 0 drawn at 1)")
        left.set_yscale("log")
    left.grid(alpha=0.3)
    names = [r.method for r in rows]
    times = [r.step_ms or 0.0 for r in rows]
    errs = [
        [max(0.0, (r.step_ms or 0) - (r.step_q25_ms or r.step_ms or 0)) for r in rows],
        [max(0.0, (r.step_q75_ms or r.step_ms or 0) - (r.step_ms or 0)) for r in rows],
    ]
    right.bar(names, times, yerr=errs, capsize=3, color="tab:blue")
    if report.reference_forward_ms is not None:
        right.axhline(
            report.reference_forward_ms,
            color="tab:red",
            linestyle="--",
            label="inference forward (reference)",
        )
        right.legend()
    right.set_ylabel("training step (ms, median)")
    right.tick_params(axis="x", rotation=30)
    right.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{report.workload} ({report.device})")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_scaling(scaling: ScalingReport, path: str | Path) -> Path:
    """Two panels, one line per method: memory and step time against ``scaling.x_name``; writes a PNG.

    Memory is the peak reading when every point has one, else the exact saved-activation bytes.
    """
    plt = _pyplot()
    use_peak = all(p.peak_bytes is not None for p in scaling.points)
    fig, (mem_ax, time_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in scaling.methods():
        pts = sorted((p for p in scaling.points if p.method == method), key=lambda p: p.x)
        xs = [p.x for p in pts]
        mem = [(p.peak_bytes if use_peak else p.saved_activation_bytes) / MIB for p in pts]  # type: ignore[operator]
        mem_ax.plot(xs, mem, marker="o", label=method)
        if all(p.step_ms is not None for p in pts):
            time_ax.plot(xs, [p.step_ms for p in pts], marker="o", label=method)
    mem_ax.set_ylabel(("peak training memory" if use_peak else "saved activations") + " (MiB)")
    time_ax.set_ylabel("training step (ms, median)")
    for ax in (mem_ax, time_ax):
        ax.set_xlabel(scaling.x_name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"{scaling.workload}: scaling with {scaling.x_name} ({scaling.device})")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def write_report(report: BenchmarkReport, out_dir: str | Path, stem: str = "benchmark") -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.json`` and ``<stem>.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{stem}.md"
    md.write_text(format_markdown(report))
    return {
        "markdown": md,
        "json": write_json(report, out / f"{stem}.json"),
        "png": plot_report(report, out / f"{stem}.png"),
    }
