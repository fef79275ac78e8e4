"""Run one accuracy + cost suite: every method trained by the Trainer, measured side by side.

For each suite (see :mod:`unipt.bench.suites`):

1. **Cost, one process, interleaved.** Every method's system is built from its run config (seed 0) on
   the same first training batch; one step each is accounted byte for byte (saved activations,
   parameters, gradients, AdamW state), then all steps and the backbones' inference-only forward are
   timed round-robin (:func:`unipt.bench.timing.time_interleaved`).
2. **Inference-only peak** of the backbones on that batch, in a fresh process.
3. **Training**, one fresh process per (method, seed): for the first seed the process first measures
   the peak memory of a few training steps (baseline taken after the model, batch and optimiser
   exist), frees them, then trains with ``Trainer(config).fit()`` and reports the test metric.

A method that fails keeps its row with ``status`` set (``OOM`` or the error), so nothing is hidden.
"""

from __future__ import annotations

import gc
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unipt.bench.accounting import saved_state_bytes
from unipt.bench.isolate import IsolatedError, run_isolated
from unipt.bench.memory import peak_of
from unipt.bench.results import BenchmarkReport, MethodResult
from unipt.bench.run import REFERENCE, account_step
from unipt.bench.suites import HEAD_LR, METHOD_LR, SuiteSpec
from unipt.bench.system_step import ReferenceForward, SystemStep, build_system_step, load_batch_records
from unipt.bench.targets import check_targets
from unipt.bench.timing import time_interleaved
from unipt.parameters import count_parameters
from unipt.train import Trainer
from unipt.train.config import RunConfig


@dataclass
class SuiteOptions:
    """How a suite is run. ``size``: ``full`` or ``quick`` (:class:`~unipt.bench.suites.SuiteSize`).

    ``resume``: reuse a training run's result saved in ``work_dir`` by an earlier, interrupted run when its
    run config is identical (the cost measurements are always redone, they are quick).
    """

    size: str = "full"
    seeds: int = 3
    repeats: int = 10
    warmup: int = 2
    memory_steps: int = 3
    work_dir: str = "runs/bench"
    methods: Sequence[str] | None = None
    threads: int | None = None
    progress: bool = True
    timeout_s: float = 3600.0
    resume: bool = False


# ----------------------------------------------------------------------------------- child processes
def train_worker(config_data: dict[str, Any], memory_steps: int) -> dict[str, Any]:
    """In a fresh process: peak memory of ``memory_steps`` training steps (if > 0), then a full training run."""
    out: dict[str, Any] = {}
    if memory_steps > 0:
        records, options = load_batch_records(config_data)
        step = build_system_step(config_data, "memory", records=records, task_options=options)
        peak = peak_of(step, "memory", steps=memory_steps)
        out["peak"] = peak.to_dict()
        del step, records
        gc.collect()
    config = RunConfig.from_dict(config_data)
    shutil.rmtree(config.train.output_dir, ignore_errors=True)
    result = Trainer(config).fit()
    out.update(
        test=result.test_metrics,
        best=result.best_metrics,
        train_time_s=result.train_time_s,
        step_time_ms=result.step_time_ms,
    )
    return out


def reference_worker(config_data: dict[str, Any], steps: int) -> dict[str, Any]:
    """In a fresh process: peak memory of the backbones' inference-only forward on the suite's batch."""
    records, _ = load_batch_records(config_data)
    reference = ReferenceForward(config_data, records)
    del records
    peak = peak_of(reference, REFERENCE, steps=steps)
    return {"peak": peak.to_dict(), "parameter_bytes": reference.parameter_bytes}


# ----------------------------------------------------------------------------------- parent side
def _tower_summary(step: SystemStep) -> tuple[str, int, int]:
    """(variant, trainable params without the head, checkpoint bytes) over the system's towers."""
    towers = step.model.towers
    variants = {name: m.variant for name, m in towers.items()}
    if len(set(variants.values())) == 1:  # one tower, or the same method on every tower
        variant = next(iter(variants.values())) + (f" (towers: {', '.join(variants)})" if len(variants) > 1 else "")
    else:
        variant = "; ".join(f"{name}: {v}" for name, v in variants.items())
    trainable = count_parameters(towers).trainable
    saved = sum(saved_state_bytes(m) for m in towers.values())
    return variant, trainable, saved


def _measure_costs(spec: SuiteSpec, methods: Sequence[str], opts: SuiteOptions,
                   configs: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], float | None, list[str]]:
    """Exact accounting and interleaved step times, every method in this process; plus the reference."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would bury the benchmark's own
    records, task_options = load_batch_records(configs[methods[0]])
    rows: dict[str, dict[str, Any]] = {}
    steps: dict[str, Any] = {}
    notes: list[str] = []
    for method in methods:
        try:
            step = build_system_step(configs[method], method, records=records, task_options=task_options)
            variant, trainable, saved = _tower_summary(step)
            rows[method] = {"variant": variant, "trainable_params": trainable, "saved_bytes": saved,
                            "total_params": count_parameters(step.model).total,
                            **account_step(step)}
            steps[method] = step
        except Exception as exc:  # keep the row, say why
            status = "OOM" if "out of memory" in str(exc).lower() else f"error: {type(exc).__name__}: {exc}"
            rows[method] = {"status": status}
            notes.append(f"{method}: cost measurement failed ({status})")
    reference = ReferenceForward(configs[methods[0]], records)
    times = time_interleaved({**steps, REFERENCE: reference}, repeats=opts.repeats, warmup=opts.warmup,
                             progress=opts.progress)
    for method in steps:
        t = times[method]
        rows[method].update(step_ms=t.median_ms, step_q25_ms=t.q25_ms, step_q75_ms=t.q75_ms)
    del steps, reference
    gc.collect()
    return rows, times[REFERENCE].median_ms, notes


def run_suite(spec: SuiteSpec, opts: SuiteOptions | None = None) -> BenchmarkReport:
    """Train and measure every method of ``spec``; returns the report with its target checks filled in."""
    from tqdm.auto import tqdm

    opts = opts or SuiteOptions()
    started = time.perf_counter()
    methods = list(opts.methods or spec.methods)
    work = Path(opts.work_dir) / spec.name
    configs = {m: spec.run_config(m, seed=0, size=opts.size, output_dir=str(work / f"{m}-seed0"))
               for m in methods}
    costs, reference_ms, notes = _measure_costs(spec, methods, opts, configs)

    reference: dict[str, Any] = {}
    try:
        reference = run_isolated(reference_worker, configs[methods[0]], opts.memory_steps,
                                 log_path=work / "logs" / "reference.log", threads=opts.threads,
                                 timeout_s=opts.timeout_s)
    except IsolatedError as err:
        notes.append(f"inference-only peak not measured: {str(err).splitlines()[0]}")

    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    failures: dict[str, str] = {}
    runs = [(m, s) for m in methods for s in range(opts.seeds)]
    bar = tqdm(runs, desc=f"{spec.name}: training", disable=not opts.progress)
    for method, seed in bar:
        bar.set_postfix(method=method, seed=seed)
        if method in failures:
            continue
        config = spec.run_config(method, seed=seed, size=opts.size, output_dir=str(work / f"{method}-seed{seed}"))
        saved = work / f"{method}-seed{seed}.result.json"
        key = {"config": config, "memory_steps": opts.memory_steps if seed == 0 else 0}
        if opts.resume and saved.is_file() and json.loads(saved.read_text()).get("key") == key:
            results[method].append(json.loads(saved.read_text())["result"])
            continue
        try:
            result = run_isolated(
                train_worker, config, key["memory_steps"],
                log_path=work / "logs" / f"{method}-seed{seed}.log", threads=opts.threads,
                timeout_s=opts.timeout_s,
            )
            results[method].append(result)
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps({"key": key, "result": result}))
        except IsolatedError as err:
            failures[method] = "OOM" if err.out_of_memory else f"error: {str(err).splitlines()[0]}"
            notes.append(f"{method} seed {seed}: training failed ({failures[method]}); see {work / 'logs'}")

    report = BenchmarkReport(
        workload=spec.name,
        description=_describe(spec, opts),
        device=f"cpu ({torch.get_num_threads()} threads)",
        rows=[_row(spec, m, costs[m], results[m], failures.get(m)) for m in methods],
        reference_forward_ms=reference_ms,
        metric_name=f"test {spec.metric}",
        notes=[*spec.notes, *notes],
        reference_peak_bytes=reference["peak"]["peak_delta_bytes"] if reference else None,
        reference_parameter_bytes=reference.get("parameter_bytes"),
    )
    report.targets = [c.to_dict() for c in check_targets(report)]
    report.elapsed_s = time.perf_counter() - started
    return report


def _row(spec: SuiteSpec, method: str, cost: dict[str, Any], runs: list[dict[str, Any]],
         failure: str | None) -> MethodResult:
    """One table row from the cost measurement and the training runs of ``method``."""
    status = cost.get("status") or failure or "ok"
    peak = runs[0].get("peak") if runs else None
    metric = f"{spec.metric}"
    values = [float(r["test"][metric]) for r in runs if r.get("test") and metric in r["test"]]
    return MethodResult(
        method=method,
        variant=cost.get("variant", method),
        trainable_params=cost.get("trainable_params", 0),
        total_params=cost.get("total_params", 0),
        saved_bytes=cost.get("saved_bytes", 0),
        saved_activation_bytes=cost.get("saved_activation_bytes", 0),
        gradient_bytes=cost.get("gradient_bytes", 0),
        optimizer_state_bytes=cost.get("optimizer_state_bytes", 0),
        peak_bytes=peak["peak_delta_bytes"] if peak else None,
        peak_backend=peak["backend"] if peak else None,
        step_ms=cost.get("step_ms"),
        step_q25_ms=cost.get("step_q25_ms"),
        step_q75_ms=cost.get("step_q75_ms"),
        metric_values=values,
        parameter_bytes=cost.get("parameter_bytes"),
        status=status,
        extra={
            "lr": METHOD_LR[method],
            "head_lr": HEAD_LR,
            "train_time_s": [round(r["train_time_s"], 1) for r in runs],
            "val": [r.get("best") for r in runs],
            "test": [r.get("test") for r in runs],
        },
    )


def _describe(spec: SuiteSpec, opts: SuiteOptions) -> str:
    size = spec.sizes[opts.size]
    towers = ", ".join(
        f"{name}: {t['backbone']}"
        + (f" ({t['max_length']} tokens)" if "max_length" in t else "")
        + (f" ({t['image_size']} px)" if "image_size" in t else "")
        for name, t in spec.config["towers"].items()
    )
    return (
        f"{spec.title}. Towers {towers}; task {spec.config['task']['name']}; train subset "
        f"{size.limit_train or 'all'}, val/test subsets {size.limit_eval or 'all'}; {size.epochs} epoch(s), "
        f"batch {size.batch_size}, AdamW + cosine, head lr {HEAD_LR:g}, method lr "
        + ", ".join(f"{m} {METHOD_LR[m]:g}" for m in (opts.methods or spec.methods))
        + f"; {opts.seeds} seed(s); final model tested (no early stopping); cost on one training batch, "
        f"step = median of {opts.repeats} interleaved steps after {opts.warmup} warm-up."
    )
