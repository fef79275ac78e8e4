"""The length sweep's records, Markdown tables, JSON, plot and target checks (see :mod:`unipt.bench.length`).

Targets (issue 8; thresholds are the issue's and never relaxed; a missing input is ``n/a`` with the reason):

* MiniLM at 128 tokens: ``unipt-fused`` step <= 1.25 x the inference-only forward and <= 0.50 x LoRA's
  step, its saved activations <= 20 % of LoRA's; ``unipt-fused-min`` saved activations <= 10 % of
  LoRA's and step <= 1.40 x inference.
* MiniLM at 512 tokens: the same two memory targets.
* Every model: UniPT's saved activations per token at each length above 128 within 1.15 x those at
  128 (at a fixed number of tokens per batch this is the ratio of the bytes themselves).
* Every point: UniPT's peak training memory (weights included) below LoRA's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unipt.bench.report import _pyplot, save_figure
from unipt.bench.results import BenchmarkReport, MethodResult
from unipt.bench.run import REFERENCE
from unipt.bench.targets import TargetCheck, checks_from_dicts, format_targets

MIB = float(2**20)
FUSED, MIN, REFERENCE_KERNEL, LORA = "unipt-fused", "unipt-fused-min", "unipt-reference", "lora"
UNIPT_ROWS = (REFERENCE_KERNEL, FUSED, MIN)


@dataclass
class LengthPoint:
    """One model at one length: batch ``batch`` x ``length`` tokens, every method's measurements."""

    model: str
    length: int
    batch: int
    report: BenchmarkReport

    @property
    def tokens(self) -> int:
        return self.batch * self.length

    def row(self, method: str) -> MethodResult | None:
        row = self.report.row(method)
        return row if row is not None and row.status == "ok" else None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "length": self.length, "batch": self.batch, "report": self.report.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LengthPoint:
        return cls(data["model"], data["length"], data["batch"], BenchmarkReport.from_dict(data["report"]))


@dataclass
class LengthReport:
    """The whole sweep: where it ran, how, every point and the target checks."""

    device: str
    command: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    points: list[LengthPoint] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float | None = None

    def series(self, model: str) -> list[LengthPoint]:
        return sorted((p for p in self.points if p.model == model), key=lambda p: p.length)

    def point(self, model: str, length: int) -> LengthPoint | None:
        return next((p for p in self.points if p.model == model and p.length == length), None)

    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for p in self.points for r in p.report.rows))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["points"] = [p.to_dict() for p in self.points]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LengthReport:
        return cls(**{**data, "points": [LengthPoint.from_dict(p) for p in data["points"]]})


# ------------------------------------------------------------------------------ targets
def _check(name: str, value: float | None, threshold: float, detail: str, missing: str) -> TargetCheck:
    if value is None:
        return TargetCheck(name, None, threshold, "<=", "n/a", missing)
    return TargetCheck(name, value, threshold, "<=", "PASS" if value <= threshold else "MISS", detail)


def _ratio_check(point: LengthPoint | None, name: str, num: str, den: str, attr: str, threshold: float,
                 where: str) -> TargetCheck:
    label = f"{where}: {name}"
    if point is None:
        return _check(label, None, threshold, "", f"{where} not measured")
    a = point.row(num)
    if den == REFERENCE:
        b_value = point.report.reference_forward_ms
    else:
        b = point.row(den)
        b_value = getattr(b, attr) if b is not None else None
    a_value = getattr(a, attr) if a is not None else None
    if not a_value or not b_value:
        return _check(label, None, threshold, "", f"no {attr} for {num if not a_value else den}")
    unit = (lambda v: f"{v:.1f} ms") if attr == "step_ms" else (lambda v: f"{v / MIB:.1f} MiB")
    return _check(label, a_value / b_value, threshold, f"{unit(a_value)} / {unit(b_value)}", "")


def length_targets(report: LengthReport) -> list[TargetCheck]:
    """Every target of the issue that this report's points can answer (see the module docstring)."""
    checks: list[TargetCheck] = []
    if "minilm" in report.models:
        for length in (128, 512):
            point = report.point("minilm", length)
            where = f"minilm {point.batch} x {length}" if point else f"minilm at {length} tokens"
            if length == 128:
                checks += [
                    _ratio_check(point, f"{FUSED} step / inference-only forward", FUSED, REFERENCE, "step_ms",
                                 1.25, where),
                    _ratio_check(point, f"{FUSED} step / LoRA step", FUSED, LORA, "step_ms", 0.50, where),
                    _ratio_check(point, f"{MIN} step / inference-only forward", MIN, REFERENCE, "step_ms", 1.40,
                                 where),
                ]
            checks += [
                _ratio_check(point, f"{FUSED} saved activations / LoRA's", FUSED, LORA, "saved_activation_bytes",
                             0.20, where),
                _ratio_check(point, f"{MIN} saved activations / LoRA's", MIN, LORA, "saved_activation_bytes",
                             0.10, where),
            ]
    for model in report.models:
        base = report.point(model, 128)
        for point in report.series(model):
            if point.length <= 128:
                continue
            for method in (FUSED, MIN):
                checks.append(_growth_check(model, method, base, point))
    for point in report.points:
        for method in (FUSED, MIN):
            checks.append(_peak_check(point, method))
    return checks


def _growth_check(model: str, method: str, base: LengthPoint | None, point: LengthPoint) -> TargetCheck:
    name = (f"{model}: {method} saved activations per token at {point.batch} x {point.length} / at 128 tokens")
    a, b = point.row(method), base.row(method) if base else None
    if a is None or b is None:
        return _check(name, None, 1.15, "", "no 128-token point" if base is None else f"no {method} row")
    per_a, per_b = a.saved_activation_bytes / point.tokens, b.saved_activation_bytes / base.tokens  # type: ignore[union-attr]
    detail = (f"{a.saved_activation_bytes / MIB:.1f} MiB for {point.tokens} tokens vs "
              f"{b.saved_activation_bytes / MIB:.1f} MiB for {base.tokens} at {base.batch} x 128")  # type: ignore[union-attr]
    return _check(name, per_a / per_b if per_b else None, 1.15, detail, "no saved activations at 128")


def _peak_check(point: LengthPoint, method: str) -> TargetCheck:
    name = f"{point.model} {point.batch} x {point.length}: {method} peak / LoRA peak (weights included)"
    a, b = point.row(method), point.row(LORA)
    if a is None or b is None or a.peak_total_bytes is None or b.peak_total_bytes is None:
        return _check(name, None, 1.0, "", "no peak reading (memory not measured, or a row failed)")
    detail = f"{a.peak_total_bytes / MIB:.1f} MiB / {b.peak_total_bytes / MIB:.1f} MiB"
    return _check(name, a.peak_total_bytes / b.peak_total_bytes, 1.0, detail, "")


# ------------------------------------------------------------------------------ Markdown
def _cell(row: MethodResult | None, text: str) -> str:
    if row is None:
        return "—"
    if row.status != "ok":
        return row.status if len(row.status) <= 24 else row.status[:21] + "..."
    return text


def _model_section(report: LengthReport, model: str, methods: list[str]) -> list[str]:
    points = report.series(model)
    uni = [m for m in methods if m.startswith("unipt")]
    lines = [f"## {model}", "", report.models.get(model, ""), "",
             "Step time, ms (median of interleaved rounds; in brackets: × the inference-only forward):", "",
             "| B × L | inference | " + " | ".join(methods) + " | "
             + " | ".join(f"{m} / lora" for m in uni) + " |",
             "|---|" + "---:|" * (1 + len(methods) + len(uni))]
    for p in points:
        ref = p.report.reference_forward_ms
        cells = ["—" if ref is None else f"{ref:.1f}"]
        for m in methods:
            r = p.report.row(m)
            text = "—" if r is None or r.step_ms is None else f"{r.step_ms:.1f}"
            if r is not None and r.step_ms is not None and ref:
                text += f" ({r.step_ms / ref:.2f}×)"
            cells.append(_cell(r, text))
        lora = p.row(LORA)
        for m in uni:
            r = p.row(m)
            ok = r is not None and lora is not None and r.step_ms and lora.step_ms
            cells.append(f"{r.step_ms / lora.step_ms:.2f}" if ok else "—")  # type: ignore[union-attr,operator]
        lines.append(f"| {p.batch} × {p.length} | " + " | ".join(cells) + " |")
    lines += ["", "Saved activations, MiB (exact, `saved_tensors_hooks`; in brackets: % of LoRA's):", "",
              "| B × L | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for p in points:
        lora = p.row(LORA)
        cells = []
        for m in methods:
            r = p.report.row(m)
            text = "—" if r is None else f"{r.saved_activation_bytes / MIB:.1f}"
            if r is not None and lora is not None and lora.saved_activation_bytes and m != LORA:
                text += f" ({100 * r.saved_activation_bytes / lora.saved_activation_bytes:.1f} %)"
            cells.append(_cell(r, text))
        lines.append(f"| {p.batch} × {p.length} | " + " | ".join(cells) + " |")
    lines += ["", "Peak memory above the loaded model, MiB (in brackets: weights included):", "",
              "| B × L | inference | " + " | ".join(methods) + " |", "|---|" + "---:|" * (1 + len(methods))]
    for p in points:
        rep = p.report
        ref = "—" if rep.reference_peak_bytes is None else (
            f"{rep.reference_peak_bytes / MIB:.1f} ({(rep.reference_total_bytes or 0) / MIB:.0f})")
        cells = [ref]
        for m in methods:
            r = rep.row(m)
            text = "—" if r is None or r.peak_bytes is None else (
                f"{r.peak_bytes / MIB:.1f} ({(r.peak_total_bytes or 0) / MIB:.0f})")
            cells.append(_cell(r, text))
        lines.append(f"| {p.batch} × {p.length} | " + " | ".join(cells) + " |")
    backends = sorted({r.peak_backend for p in points for r in p.report.rows if r.peak_backend})
    lines += ["", f"Peak readings: {', '.join(backends) or 'not measured'}.", ""]
    return lines


def format_length(report: LengthReport) -> str:
    """The whole sweep as Markdown: header, one section per model, target checks, notes."""
    s = report.settings
    methods = report.methods()
    lines = [
        f"# Training cost against sequence length ({report.device})", "",
        f"- Command: `{report.command}`" if report.command else "- Command: (API call)",
        f"- Batch: at most {s.get('max_batch')} sequences and {s.get('tokens_per_batch')} tokens per batch "
        f"(B = min(max batch, tokens / L)); inputs: {s.get('batch_inputs')}.",
        f"- Dropout: {s.get('dropout')}. UniPT options: {s.get('unipt_options')}; LoRA (PEFT): "
        f"{s.get('lora_options')}.",
        f"- Timing: every method and the inference-only forward in ONE process, {s.get('rounds')} interleaved "
        f"rounds after {s.get('warmup')} warm-up, medians; {s.get('threads')} torch threads.",
        "- Peak memory: CPU: resident set, one fresh process per method (`VmHWM`), "
        f"{s.get('memory_steps')} steps; CUDA: `max_memory_allocated` above the memory before the steps.",
    ]
    if report.elapsed_s is not None:
        lines.append(f"- Wall time: {report.elapsed_s / 60:.1f} min.")
    lines.append("")
    for model in report.models:
        if report.series(model):
            lines += _model_section(report, model, methods)
    if report.targets:
        lines.append(format_targets(checks_from_dicts(report.targets), "Target checks (issue 8)"))
    notes = [*report.notes, *(f"{p.model} {p.batch} × {p.length}: {n}" for p in report.points for n in p.report.notes)]
    if notes:
        lines += ["Notes:", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ plot + files
def plot_length(report: LengthReport, path: str | Path) -> Path:
    """A row per model: step time, saved activations and peak memory against L (log-log); a line per method."""
    plt = _pyplot()
    models = [m for m in report.models if report.series(m)]
    fig, axes = plt.subplots(max(1, len(models)), 3, figsize=(15, 4.2 * max(1, len(models))), squeeze=False)
    for row, model in zip(axes, models, strict=False):
        points = report.series(model)
        xs = [p.length for p in points]
        for method in report.methods():
            style = {"linewidth": 2.5} if method == FUSED else {}
            rows = [p.report.row(method) for p in points]
            for ax, attr, scale in ((row[0], "step_ms", 1.0), (row[1], "saved_activation_bytes", MIB),
                                    (row[2], "peak_bytes", MIB)):
                pts = [(x, getattr(r, attr) / scale) for x, r in zip(xs, rows, strict=True)
                       if r is not None and r.status == "ok" and getattr(r, attr)]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=method, **style)
        ref_t = [(p.length, p.report.reference_forward_ms) for p in points if p.report.reference_forward_ms]
        ref_m = [(p.length, p.report.reference_peak_bytes / MIB) for p in points if p.report.reference_peak_bytes]
        for ax, ref in ((row[0], ref_t), (row[2], ref_m)):
            if ref:
                ax.plot(*zip(*ref, strict=True), linestyle="--", color="gray", label="inference-only forward")
        labels = [f"{p.length}\n(B={p.batch})" for p in points]
        titles = ("training step (ms, median)", "saved activations (MiB, exact)", "peak above loaded model (MiB)")
        for ax, title in zip(row, titles, strict=True):
            ax.set_title(f"{model}: {title}", fontsize="medium")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(xs, labels)
            ax.set_xlabel("sequence length L (batch)")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:  # nothing to label where nothing was measured
                ax.legend(fontsize="small")
    fig.suptitle(f"Training cost against sequence length ({report.device})")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_length_report(report: LengthReport, out_dir: str | Path, stem: str = "length",
                        plot: bool = True) -> dict[str, Path]:
    """``<stem>.md``, ``<stem>.json`` and (``plot``) ``<stem>.png`` in ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{stem}.md", "json": out / f"{stem}.json"}
    paths["markdown"].write_text(format_length(report))
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2))
    if plot and report.points:
        paths["png"] = plot_length(report, out / f"{stem}.png")
    return paths


def load_length_report(path: str | Path) -> LengthReport:
    """Read a report written by :func:`write_length_report`."""
    return LengthReport.from_dict(json.loads(Path(path).read_text()))
