"""Scaling: every method's memory and step time against backbone depth and against batch size.

Random-initialised BERT-style encoders (``tiny_bert_workload``; no downloads). The CPU default keeps the
depths of the issue (6, 12, 24 layers) but a narrower width (256, 4 heads, 64 tokens, batch 8) so the
whole sweep runs in minutes on two cores; ``--hidden 768 --heads 12 --seq-len 128`` is BERT-base width.
Each point is a full :func:`unipt.bench.run.run_benchmark`: exact saved-activation bytes, peak memory
in a fresh process per method, interleaved step times and the inference-only forward.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unipt.bench.report import MIB, _pyplot, save_figure
from unipt.bench.results import ScalingPoint, ScalingReport
from unipt.bench.run import run_scaling
from unipt.bench.workload import Workload, tiny_bert_workload

SCALING_METHODS = ("frozen", "full", "bitfit", "lora", "ia3", "lst", "unipt")


@dataclass
class ScalingOptions:
    """Workload sizes and the swept values. ``layers`` / ``batch_size`` are the fixed values of the other sweep."""

    depths: tuple[int, ...] = (6, 12, 24)
    batches: tuple[int, ...] = (4, 8, 16, 32)
    hidden: int = 256
    heads: int = 4
    seq_len: int = 64
    layers: int = 12
    batch_size: int = 8
    methods: tuple[str, ...] = SCALING_METHODS
    repeats: int = 5
    warmup: int = 1
    measure_memory: bool = True
    device: str = "cpu"
    progress: bool = True
    threads: int | None = None


def _workload(opts: ScalingOptions, sweep: str, value: int) -> Workload:
    sizes: dict[str, Any] = {"hidden": opts.hidden, "layers": opts.layers, "heads": opts.heads,
                             "seq_len": opts.seq_len, "batch_size": opts.batch_size}
    sizes["layers" if sweep == "depth" else "batch_size"] = value
    return tiny_bert_workload(**sizes)


def run_scaling_sweeps(opts: ScalingOptions) -> list[ScalingReport]:
    """The depth sweep then the batch sweep; one :class:`ScalingReport` each."""
    reports = []
    for sweep, values in (("depth", opts.depths), ("batch", opts.batches)):
        if not values:
            continue
        report = run_scaling(
            functools.partial(_workload, opts, sweep), list(values), list(opts.methods), x_name=sweep,
            name=f"random BERT (D={opts.hidden}, {opts.heads} heads, {opts.seq_len} tokens)",
            device=opts.device, progress=opts.progress, repeats=opts.repeats, warmup=opts.warmup,
            measure_memory=opts.measure_memory, threads=opts.threads,
        )
        fixed = f"batch {opts.batch_size}" if sweep == "depth" else f"{opts.layers} layers"
        report.notes.append(f"{sweep} sweep at {fixed}")
        reports.append(report)
    return reports


def _series(report: ScalingReport, method: str) -> list[ScalingPoint]:
    return sorted((p for p in report.points if p.method == method), key=lambda p: p.x)


def _growth(points: list[ScalingPoint], attr: str) -> str:
    first, last = getattr(points[0], attr), getattr(points[-1], attr)
    return "—" if not first or last is None else f"{last / first:.2f}×"


def format_scaling(report: ScalingReport) -> str:
    """Markdown: per method and x, ``peak / saved activations (MiB) / step (ms)``, plus growth first->last."""
    xs = sorted({p.x for p in report.points})
    head = " | ".join(f"{report.x_name} {x:g}" for x in xs)
    lines = [
        f"### {report.workload}: scaling with {report.x_name} ({report.device})",
        "",
        *(f"{n}." for n in report.notes),
        "",
        "Cells: peak MiB above the loaded model / saved-activation MiB / step ms (median).",
        "",
        f"| Method | {head} | growth peak | growth saved act. | growth step |",
        "|---|" + "---:|" * (len(xs) + 3),
    ]
    for method in report.methods():
        pts = _series(report, method)
        by_x = {p.x: p for p in pts}
        cells = []
        for x in xs:
            p = by_x.get(x)
            if p is None:
                cells.append("—")
                continue
            peak = "—" if p.peak_bytes is None else f"{p.peak_bytes / MIB:.1f}"
            step = "—" if p.step_ms is None else f"{p.step_ms:.0f}"
            cells.append(f"{peak} / {p.saved_activation_bytes / MIB:.1f} / {step}")
        growth = [_growth(pts, a) for a in ("peak_bytes", "saved_activation_bytes", "step_ms")]
        lines.append(f"| {method} | " + " | ".join(cells) + " | " + " | ".join(growth) + " |")
    if report.reference_ms:
        ref = " | ".join(f"{report.reference_ms.get(str(float(x)), float('nan')):.0f} ms" for x in xs)
        lines.append(f"| inference-only forward | {ref} | | | |")
    return "\n".join(lines) + "\n"


def plot_scaling_grid(reports: list[ScalingReport], path: str | Path) -> Path:
    """One PNG: a row per sweep, columns peak memory, saved activations and step time; a line per method."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(reports), 3, figsize=(15, 4.2 * len(reports)), squeeze=False)
    for row, report in zip(axes, reports, strict=True):
        for method in report.methods():
            pts = _series(report, method)
            xs = [p.x for p in pts]
            style = {"linewidth": 3, "color": "black"} if method == "unipt" else {}
            if all(p.peak_bytes is not None for p in pts):
                row[0].plot(xs, [p.peak_bytes / MIB for p in pts], marker="o", label=method, **style)
            row[1].plot(xs, [p.saved_activation_bytes / MIB for p in pts], marker="o", label=method, **style)
            if all(p.step_ms is not None for p in pts):
                row[2].plot(xs, [p.step_ms for p in pts], marker="o", label=method, **style)
        if report.reference_ms:
            ref = sorted((float(x), ms) for x, ms in report.reference_ms.items())
            row[2].plot([x for x, _ in ref], [ms for _, ms in ref], linestyle="--", color="gray",
                        label="inference-only forward")
            row[2].legend(fontsize="small")
        titles = ("peak memory above model (MiB)", "saved activations (MiB, exact)", "training step (ms, median)")
        for ax, title in zip(row, titles, strict=True):
            ax.set_title(f"{title} vs {report.x_name}", fontsize="medium")
            ax.set_xlabel(report.x_name)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({p.x for p in report.points}))
            ax.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
            ax.grid(alpha=0.3)
        row[1].set_yscale("log")
        row[1].legend(fontsize="small")
    fig.suptitle(f"{reports[0].workload} ({reports[0].device})")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_scaling(reports: list[ScalingReport], out_dir: str | Path, stem: str = "scaling") -> dict[str, Path]:
    """``<stem>.md`` (tables), ``<stem>.json`` (all points) and ``<stem>.png`` (the grid)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{stem}.md"
    md.write_text("\n".join(format_scaling(r) for r in reports))
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps({"sweeps": [r.to_dict() for r in reports]}, indent=2))
    return {"markdown": md, "json": json_path, "png": plot_scaling_grid(reports, out / f"{stem}.png")}


def load_scaling(path: str | Path) -> list[ScalingReport]:
    """Read the sweeps written by :func:`write_scaling`."""
    return [ScalingReport.from_dict(d) for d in json.loads(Path(path).read_text())["sweeps"]]
