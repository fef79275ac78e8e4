"""``unipt bench suite``: run the chosen suites and write one Markdown/JSON/PNG set per suite plus a summary.

Outputs in ``--out``: ``suite-<name>.md|json|png`` per suite and ``suite.md`` / ``suite.json`` with every
table, every target check, the machine, the command and the wall time. The machine load is recorded
before and after each suite: on a shared machine, step times are only comparable *within* one table
(they are interleaved), and the summary says when other work was competing for the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from unipt.bench.report import format_markdown, write_report
from unipt.bench.results import BenchmarkReport
from unipt.bench.suite_run import SuiteOptions, run_suite
from unipt.bench.suites import SEEDS, get_suite
from unipt.bench.targets import checks_from_dicts, format_targets


def machine_description() -> str:
    """CPU model, logical cores, torch threads, torch and Python versions (one line)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} "
            f"threads), Python {platform.python_version()}, {platform.system()} {platform.release()}")


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def load_note(before: float | None, after: float | None, cores: int | None = None) -> str | None:
    """A note when the 1-minute load average exceeded the cores (other processes competed for the CPU)."""
    cores = cores or os.cpu_count() or 1
    readings = [v for v in (before, after) if v is not None]
    if not readings or max(readings) <= cores + 0.5:
        return None
    return (f"shared machine: 1-min load average {before:.1f} before / {after:.1f} after on {cores} cores, so "
            "other work competed for the CPU; absolute times are inflated and noisier, ratios within this "
            "table remain comparable (interleaved timing)")


def run_suites(args: argparse.Namespace) -> int:
    """Run ``args.suites``; print each table and its target checks; write the outputs. Returns 0."""
    quick = bool(getattr(args, "quick", False))
    opts_base = {
        "size": "quick" if quick else "full",
        "seeds": args.seeds or (1 if quick else SEEDS),
        "repeats": args.repeats or (2 if quick else 8),
        "warmup": args.warmup or 1,
        "work_dir": args.work_dir,
        "threads": args.threads or None,
        "progress": not args.no_progress,
        "memory_steps": 2 if quick else 3,
        "resume": bool(getattr(args, "resume", False)),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "unipt bench " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:])
    started = time.perf_counter()
    reports: list[BenchmarkReport] = []
    for name in [s.strip() for s in args.suites.split(",") if s.strip()]:
        spec = get_suite(name)
        methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
        methods = [m for m in methods if m in spec.methods] if methods else None
        before = _load()
        report = run_suite(spec, SuiteOptions(methods=methods, **opts_base))
        note = load_note(before, _load())
        if note:
            report.notes.append(note)
        reports.append(report)
        write_report(report, out, stem=f"suite-{name}")
        print(format_markdown(report), flush=True)
        _write_summary(reports, out, command, time.perf_counter() - started)  # partial results survive a crash
    total = time.perf_counter() - started
    _write_summary(reports, out, command, total)
    print(f"\nall suites: {total / 60:.1f} min; wrote {out / 'suite.md'}, {out / 'suite.json'} and suite-*.png")
    for report in reports:
        print(format_targets(checks_from_dicts(report.targets), f"Target checks ({report.workload})"))
    return 0


def format_target_summary(reports: list[BenchmarkReport]) -> str:
    """One table: a row per target, a column per suite, each cell the measured value and PASS/MISS/n/a."""
    names = list(dict.fromkeys(t["name"].replace(r.metric_name or "", "metric")
                               for r in reports for t in r.targets))
    lines = ["| Target | " + " | ".join(r.workload for r in reports) + " |",
             "|---|" + "---|" * len(reports)]
    for name in names:
        cells = []
        for r in reports:
            found = [t for t in r.targets if t["name"].replace(r.metric_name or "", "metric") == name]
            if not found:
                cells.append("—")
                continue
            t = found[0]
            value = "—" if t["value"] is None else f"{t['value']:.3g}"
            cells.append(f"{value} **{t['status']}**")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_summary(reports: list[BenchmarkReport], command: str, elapsed_s: float,
                   machine: str | None = None) -> str:
    """The combined Markdown: header (machine, command, time), target summary, every suite's table."""
    lines = [
        "# UniPT benchmark suites",
        "",
        f"- Machine: {machine or machine_description()}",
        f"- Command: `{command}`",
        f"- Wall time: {elapsed_s / 60:.1f} min for {len(reports)} suite(s)",
        "",
        "## Target checks, all suites",
        "",
        format_target_summary(reports),
    ]
    lines += [format_markdown(r) for r in reports]
    return "\n".join(lines)


def rewrite_summary(out: str | Path) -> Path:
    """Re-render ``suite.md`` from ``suite.json`` (e.g. after a formatting change), without re-running."""
    data = json.loads((Path(out) / "suite.json").read_text())
    reports = [BenchmarkReport.from_dict(d) for d in data["suites"]]
    path = Path(out) / "suite.md"
    path.write_text(format_summary(reports, data["command"], data["elapsed_s"], data.get("machine")))
    return path


def _write_summary(reports: list[BenchmarkReport], out: Path, command: str, elapsed_s: float) -> None:
    (out / "suite.md").write_text(format_summary(reports, command, elapsed_s))
    data: dict[str, Any] = {
        "machine": machine_description(),
        "command": command,
        "elapsed_s": elapsed_s,
        "suites": [r.to_dict() for r in reports],
    }
    (out / "suite.json").write_text(json.dumps(data, indent=2))
