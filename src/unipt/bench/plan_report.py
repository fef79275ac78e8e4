"""``unipt plan CONFIG.yaml [--set ...]``: the memory planner's command line and its Markdown / JSON output.

    unipt plan configs/rotten_tomatoes.yaml                       # UniPT and the baselines, CPU and CUDA
    unipt plan configs/tuxpaint.yaml --set train.batch_size=128 --methods unipt,lora --format json
    unipt plan configs/rotten_tomatoes.yaml --measure             # also measure each peak (fresh processes)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from unipt.bench.planner import BASELINES, MethodPlan, measure_method, plan_config
from unipt.io_streams import add_format_argument, emit
from unipt.overrides import add_set_argument
from unipt.train.causal_guard import refuse_causal_lm
from unipt.train.config import apply_override, load_run_config

MIB = float(2**20)


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / MIB:.1f}"


def _lengths(config_data: dict[str, Any]) -> str:
    parts = []
    for name, tower in config_data["towers"].items():
        tower = tower if isinstance(tower, dict) else {"backbone": tower}
        if tower.get("max_length"):
            parts.append(f"{name}: {tower['backbone']}, {tower['max_length']} tokens")
        elif tower.get("image_size"):
            parts.append(f"{name}: {tower['backbone']}, {tower['image_size']} px")
        else:
            parts.append(f"{name}: {tower['backbone']}, its default input size")
    return "; ".join(parts)


def format_plan(plans: list[MethodPlan], config_data: dict[str, Any], source: str,
                probe_batches: tuple[int, int]) -> str:
    """A Markdown table, one row per method, the sizes in MiB, with how they were obtained."""
    batch = plans[0].batch_size if plans else config_data.get("train", {}).get("batch_size")
    measured = any(p.measured_cpu_peak_bytes is not None for p in plans)
    lines = [
        f"# Memory plan: {source}", "",
        f"Batch {batch}; {_lengths(config_data)} (text padded to `max_length`: the worst batch of a run). "
        f"Probe steps at batch {probe_batches[0]} and {probe_batches[1]}, extrapolated operation by operation.",
        "",
        "| Method | Trainable params | Weights | Gradients | AdamW state | Saved activations | Transient at the peak "
        "| Peak in | **CPU: above the loaded model** |" + (" CPU: measured |" if measured else "")
        + " **CUDA: max_memory_allocated** |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|" + ("---:|" if measured else "") + "---:|",
    ]
    for p in plans:
        if p.status != "ok":
            lines.append(f"| {p.method} | {p.status} |" + " |" * (9 if measured else 8))
            continue
        cells = [p.method, f"{p.trainable_params:,}", _mib(p.weights_bytes), _mib(p.gradient_bytes),
                 _mib(p.optimizer_bytes), _mib(p.saved_activation_bytes), _mib(p.transient_bytes), p.peak_phase,
                 f"**{_mib(p.cpu_peak_bytes)}**"]
        if measured:
            m = p.measured_cpu_peak_bytes
            cells.append("—" if m is None else f"{_mib(m)} ({m / max(p.cpu_peak_bytes, 1):.2f}×)")
        cells.append(f"**{_mib(p.cuda_peak_bytes)}**")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "MiB. Peak above the loaded model = AdamW state + the larger of the forward/backward peak (saved "
        "activations + what else is alive then: temporaries, gradients made so far) and the optimiser-step peak "
        "(gradients + the update's temporaries). CPU: tensor memory; with glibc's default malloc the resident set "
        "can run 1.5-2x higher (freed blocks kept), `MALLOC_MMAP_THRESHOLD_=131072` or jemalloc bring it down to "
        "this. CUDA: weights + batch + that peak, in the caching allocator's 512-byte blocks, plus nothing for the "
        "CUDA context (~0.3-0.5 GiB in `nvidia-smi`) or cuBLAS/cuDNN workspaces; GPU attention kernels are "
        "assumed to save what the CPU ones save.",
    ]
    if measured:
        lines.append("Measured: one fresh process per method, 3 training steps on the same batch, peak resident "
                     "set above the loaded model, with freed memory returned to the OS.")
    notes = [f"{p.method}: {n}" for p in plans for n in p.notes]
    lines += [f"- {n}" for n in notes]
    variants = [f"- {p.method}: {p.variant}" for p in plans if p.status == "ok"]
    return "\n".join([*lines, "", "Methods:", "", *variants]) + "\n"


def add_plan_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``plan`` to the ``unipt`` command's sub-parsers."""
    p = subparsers.add_parser("plan", help="predict peak training memory (UniPT and baselines, CPU and CUDA)",
                              description="Predict, before training, the peak training memory of the config's "
                                          "method and of the baselines, on CPU and on a CUDA device.")
    p.add_argument("config", help="a run config (YAML), as for `unipt train`")
    add_set_argument(p)
    p.add_argument("--methods", default=",".join(BASELINES),
                   help="baselines besides the config's own method (comma-separated registry names)")
    p.add_argument("--probe-batches", default="2,4", help="the two small batch sizes of the probe steps")
    p.add_argument("--measure", action="store_true",
                   help="also measure each method's CPU peak (one fresh process per method; takes longer)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for probes and measurements")
    p.add_argument("--json", help="also write the plan as JSON here")
    add_format_argument(p, default="md")
    p.set_defaults(func=run_plan_command)
    return p


def run_plan_command(args: argparse.Namespace) -> int:
    """Plan (and optionally measure) every method; print the table; write JSON if asked."""
    import torch
    import yaml

    refuse_causal_lm(load_run_config(args.config, args.set), "plan",  # validates the file and the overrides
                     "`unipt bench causal` measures decoder LMs' memory by method and length")
    data = yaml.safe_load(Path(args.config).read_text()) or {}
    for item in args.set or []:
        apply_override(data, item)
    probes = tuple(int(v) for v in args.probe_batches.split(","))
    if len(probes) != 2 or not 0 < probes[0] < probes[1]:
        raise ValueError(f"--probe-batches needs two increasing sizes such as 2,4, got {args.probe_batches!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    plans = plan_config(data, methods, probe_batches=probes)  # type: ignore[arg-type]
    if args.measure:
        for plan in plans:
            if plan.status == "ok":
                plan.measured_cpu_peak_bytes = measure_method(data, plan.method, threads=args.threads or None)
    result = {"config": args.config, "overrides": args.set or [], "probe_batches": list(probes),
              "plans": [p.to_dict() for p in plans]}
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    emit(format_plan(plans, data, args.config, probes) if args.format == "md" else result,  # type: ignore[arg-type]
         args.format)
    return 0
