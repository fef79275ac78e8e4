"""Run a benchmark: exact accounting, isolated peak memory and interleaved timing for several methods.

Metrics (accuracy, R@1...) come from real training runs, which belong to the training loop; pass
them in as ``metrics={method: [value per seed]}`` and they are carried into the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from unipt.bench.accounting import (
    SavedActivationMeter,
    gradient_bytes,
    optimizer_state_bytes,
    parameter_bytes,
    saved_state_bytes,
)
from unipt.bench.memory import measure_peak_memory_all
from unipt.bench.results import BenchmarkReport, MethodResult, ScalingPoint, ScalingReport
from unipt.bench.timing import inference_forward, time_interleaved
from unipt.bench.workload import MethodSpec, TrainingStep, Workload, as_specs, build_training_step
from unipt.parameters import count_parameters

REFERENCE = "backbone inference (reference)"


def account_step(step: TrainingStep | Any) -> dict[str, int]:
    """Run one training step and return its exact byte accounting (see :mod:`unipt.bench.accounting`).

    ``step`` is a :class:`TrainingStep` or anything with ``model``, ``optimizer``, an optional ``head``
    module and ``__call__(forward_context)`` (e.g. :class:`unipt.bench.system_step.SystemStep`).
    """
    modules = [m for m in (step.model, getattr(step, "head", None)) if m is not None]
    meter = SavedActivationMeter(*modules)
    step(forward_context=meter)
    return {
        "saved_activation_bytes": meter.bytes,
        "gradient_bytes": sum(gradient_bytes(m) for m in modules),
        "optimizer_state_bytes": optimizer_state_bytes(step.optimizer),
        "parameter_bytes": sum(parameter_bytes(m) for m in modules),
    }


def run_benchmark(
    workload: Workload,
    methods: Iterable[str | MethodSpec],
    *,
    device: str = "cpu",
    repeats: int = 20,
    warmup: int = 3,
    memory_steps: int = 3,
    measure_memory: bool = True,
    metrics: Mapping[str, Sequence[float]] | None = None,
    metric_name: str | None = None,
    seed: int = 0,
    progress: bool = True,
    notes: Sequence[str] = (),
    threads: int | None = None,
) -> BenchmarkReport:
    """Measure every method on ``workload`` and return a :class:`BenchmarkReport`.

    All methods start from the same seed (same backbone weights, batch and head init). Steps are
    timed interleaved together with the inference-only forward of a fresh copy of the backbone;
    peak memory runs each method in its own spawned process (``measure_memory=False`` skips it).
    """
    specs = as_specs(methods)
    steps = {
        s.key: build_training_step(workload, s.method, s.options, seed=seed, device=device) for s in specs
    }
    accounting = {key: account_step(step) for key, step in steps.items()}

    reference_backbone = workload.backbone_factory().to(device)
    batch = {k: v.to(device) for k, v in workload.batch_factory(workload.batch_size).items() if k != "labels"}
    timed: dict[str, Callable[[], object]] = {
        **steps,
        REFERENCE: inference_forward(reference_backbone, batch),
    }
    times = time_interleaved(timed, repeats=repeats, warmup=warmup, device=device, progress=progress)
    peaks = (
        measure_peak_memory_all(
            workload, specs, steps=memory_steps, device=device, progress=progress, threads=threads
        )
        if measure_memory
        else {}
    )

    rows = []
    for spec in specs:
        key, model = spec.key, steps[spec.key].model
        peak, timing = peaks.get(key), times[key]
        rows.append(
            MethodResult(
                method=key,
                variant=model.variant,
                trainable_params=count_parameters(model).trainable,
                total_params=count_parameters(model).total,
                saved_bytes=saved_state_bytes(model),
                **accounting[key],
                peak_bytes=peak.peak_delta_bytes if peak else None,
                peak_backend=peak.backend if peak else None,
                step_ms=timing.median_ms,
                step_q25_ms=timing.q25_ms,
                step_q75_ms=timing.q75_ms,
                metric_values=list((metrics or {}).get(key, [])),
            )
        )
    return BenchmarkReport(
        workload=workload.name,
        description=workload.description,
        device=device if device != "cpu" else f"cpu ({torch.get_num_threads()} threads)",
        rows=rows,
        reference_forward_ms=times[REFERENCE].median_ms,
        metric_name=metric_name,
        notes=list(notes),
    )


def run_scaling(
    make_workload: Callable[[Any], Workload],
    values: Sequence[Any],
    methods: Iterable[str | MethodSpec],
    *,
    x_name: str,
    name: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    **benchmark_options: Any,
) -> ScalingReport:
    """Run :func:`run_benchmark` for each value (e.g. depth or batch size) and collect one line per method.

    ``make_workload(value)`` builds the workload for one point; it need not be picklable itself, but
    the workloads it returns must be (for the isolated memory processes). ``name`` labels the sweep
    (default: the first workload's name).
    """
    from tqdm.auto import tqdm

    specs = as_specs(methods)
    scaling: ScalingReport | None = None
    for value in tqdm(values, desc=f"scaling over {x_name}", disable=not progress):
        workload = make_workload(value)
        report = run_benchmark(workload, specs, device=device, progress=progress, **benchmark_options)
        if scaling is None:
            scaling = ScalingReport(x_name=x_name, workload=name or workload.name, device=report.device)
        scaling.points += [
            ScalingPoint(r.method, float(value), r.peak_bytes, r.step_ms, r.saved_activation_bytes, r.trainable_params)
            for r in report.rows
        ]
        if report.reference_forward_ms is not None:
            scaling.reference_ms[str(float(value))] = report.reference_forward_ms
    if scaling is None:
        raise ValueError("values is empty")
    return scaling
