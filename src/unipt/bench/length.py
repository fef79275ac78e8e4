"""``unipt bench length``: training cost against sequence length, UniPT's kernels next to LoRA and full.

For each model and length ``L`` (batch ``B`` shrinks at long ``L`` so that ``B x L`` stays at
``tokens``), ONE process builds every method's training step on the same batch and backbone weights:

* ``unipt-reference``: UniPT with ``kernel="reference"`` (the plain modules; saved ``[B, L, L]`` maps);
* ``unipt-fused``: ``kernel="fused"`` (the default path); ``unipt-fused-min``: plus ``memory="min"``;
* ``lora``: PEFT LoRA r=8, alpha 16, on ``query``/``value``, LoRA dropout 0;
* ``full``: full fine-tuning.

Every backbone has ALL its dropout set to 0 (hidden, attention), so every method runs with dropout off,
and keeps its default attention implementation (transformers' ``sdpa``: the report names it). Per point:
exact saved-activation bytes (``SavedActivationMeter``: ``saved_tensors_hooks``), interleaved step
times with the backbone's inference-only forward (:func:`unipt.bench.timing.time_interleaved`) and peak
memory: on CPU one fresh process per method (:mod:`unipt.bench.memory`), on CUDA
``max_memory_allocated`` in this process. Tables, JSON, plot and target checks: :mod:`length_report`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unipt.backbones import load_backbone
from unipt.bench.isolate import run_isolated
from unipt.bench.length_report import LengthPoint, LengthReport, length_targets, write_length_report
from unipt.bench.memory import PeakMemory, free_memory, is_out_of_memory, measure_peak_memory, peak_of
from unipt.bench.results import BenchmarkReport, MethodResult
from unipt.bench.run import REFERENCE, account_step
from unipt.bench.suite_report import machine_description
from unipt.bench.timing import inference_forward, time_interleaved
from unipt.bench.workload import MethodSpec, Workload, build_training_step, random_text_batch

UNIPT_OPTIONS: dict[str, Any] = {"preset": "auto", "reduction": 2}  # as the suites configure MiniLM
LORA_OPTIONS: dict[str, Any] = {"r": 8, "alpha": 16.0, "dropout": 0.0, "target_modules": ["query", "value"]}
METHODS: dict[str, MethodSpec] = {
    "unipt-reference": MethodSpec("unipt", {**UNIPT_OPTIONS, "kernel": "reference"}, "unipt-reference"),
    "unipt-fused": MethodSpec("unipt", {**UNIPT_OPTIONS, "kernel": "fused"}, "unipt-fused"),
    "unipt-fused-min": MethodSpec("unipt", {**UNIPT_OPTIONS, "kernel": "fused", "memory": "min"}, "unipt-fused-min"),
    "lora": MethodSpec("lora", dict(LORA_OPTIONS), "lora"),
    "full": MethodSpec("full", {}, "full"),
}
MODELS = ("minilm", "random-bert", "tiny")


# ------------------------------------------------------------------------------ models (picklable)
@dataclass(frozen=True)
class LengthModel:
    """A backbone of the sweep: its name, most positions, and a description for the report."""

    name: str
    max_positions: int
    description: str
    factory: Callable[[], nn.Module]
    vocab: int


def _dropout_off(model: nn.Module) -> nn.Module:
    """Every ``nn.Dropout`` to p=0 (BERT's attention reads its dropout's ``p`` too): dropout off everywhere."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def minilm_backbone() -> nn.Module:
    """The packaged all-MiniLM-L6-v2 encoder with dropout off."""
    return _dropout_off(load_backbone("minilm").model)


def random_bert_backbone(width: int, heads: int, layers: int, positions: int, seed: int = 0) -> nn.Module:
    """A random-initialised ``BertModel`` (FFN 4x width, no pooler) with dropout off."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.BertConfig(
        hidden_size=width, num_attention_heads=heads, num_hidden_layers=layers, intermediate_size=4 * width,
        max_position_embeddings=positions, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return _dropout_off(transformers.BertModel(config, add_pooling_layer=False))


def get_model(name: str, width: int = 384, heads: int = 12, layers: int = 12) -> LengthModel:
    """``minilm`` (packaged, 512 positions), ``random-bert`` (2048 positions) or ``tiny`` (tests, 128)."""
    if name == "minilm":
        return LengthModel("minilm", 512, "all-MiniLM-L6-v2 (packaged weights): 6 layers, width 384, 12 heads",
                           minilm_backbone, 30522)
    if name == "random-bert":
        factory = functools.partial(random_bert_backbone, width, heads, layers, 2048)
        return LengthModel("random-bert", 2048, f"random-init BERT: {layers} layers, width {width}, {heads} heads, "
                           f"FFN {4 * width}, 2048 positions", factory, 30522)
    if name == "tiny":
        factory = functools.partial(random_bert_backbone, 32, 2, 2, 128)
        return LengthModel("tiny", 128, "tiny random BERT: 2 layers, width 32, 2 heads (smoke test)", factory, 30522)
    raise ValueError(f"unknown model {name!r} for the length sweep; use one of {', '.join(MODELS)}")


# ------------------------------------------------------------------------------ options
@dataclass
class LengthOptions:
    """What ``unipt bench length`` runs. ``batch`` is the largest batch; at length ``L`` the batch is
    ``min(batch, tokens // L)`` (at least 1), so from ``tokens / batch`` on every point holds ``tokens``.

    ``random_width``: width of the random BERT (``None``: 384 on CPU, MiniLM-L12's shape; 768 on CUDA,
    BERT-base's). ``budget_s``: stop starting new points after this many seconds (unattended GPU runs).
    """

    models: tuple[str, ...] = ("minilm", "random-bert")
    lengths: tuple[int, ...] = (32, 128, 512, 2048)
    batch: int = 32
    tokens: int = 4096
    methods: tuple[str, ...] = tuple(METHODS)
    rounds: int = 5
    warmup: int = 1
    memory_steps: int = 2
    measure_memory: bool = True
    device: str = "cpu"
    threads: int | None = 2
    random_width: int | None = None
    random_heads: int = 12
    random_layers: int = 12
    budget_s: float | None = None
    progress: bool = True
    out: str = "benchmarks/results"
    stem: str = "length"
    command: str = ""
    notes: list[str] = field(default_factory=list)

    def batch_at(self, length: int) -> int:
        return max(1, min(self.batch, self.tokens // length))

    def width(self) -> int:
        if self.random_width is not None:
            return self.random_width
        return 768 if self.device.startswith("cuda") else 384


def _specs(names: tuple[str, ...]) -> list[MethodSpec]:
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown length-sweep methods {unknown}; choose from {', '.join(METHODS)}")
    return [METHODS[n] for n in names]


def _workload(model: LengthModel, length: int, batch: int, width: int) -> Workload:
    return Workload(
        name=f"{model.name}@{length}", backbone_factory=model.factory,
        batch_factory=functools.partial(random_text_batch, seq_len=length, vocab=model.vocab),
        feature_dim=width, batch_size=batch, description=f"{model.description}; batch {batch} x {length} tokens",
    )


# ------------------------------------------------------------------------------ measuring one point
def inference_peak_in_this_process(workload: Workload, steps: int = 2, device: str = "cpu") -> PeakMemory:
    """Peak of the backbone's inference-only forward above its loaded weights (fresh process on CPU)."""
    backbone = workload.backbone_factory().to(device)
    batch = {k: v.to(device) for k, v in workload.batch_factory(workload.batch_size).items() if k != "labels"}
    forward = inference_forward(backbone, batch)
    forward()  # first-call initialisation belongs to the baseline, as the training steps' probes put it there
    return peak_of(forward, REFERENCE, steps=steps, device=device)


def _isolated_inference_peak(workload: Workload, opts: LengthOptions) -> PeakMemory:
    return run_isolated(inference_peak_in_this_process, workload, opts.memory_steps, "cpu", threads=opts.threads,
                        timeout_s=600.0)


def _fresh_process_peaks(workload: Workload, specs: list[MethodSpec], rows: dict[str, MethodResult],
                         notes: list[str], opts: LengthOptions) -> None:
    """CPU peaks, one fresh process per method; a failed reading leaves the peak empty with a note."""
    for spec in specs:
        try:
            peak = measure_peak_memory(workload, spec.method, spec.options, steps=opts.memory_steps, device="cpu",
                                       threads=opts.threads)
        except Exception as exc:
            notes.append(f"{spec.key}: peak memory not measured ({'OOM' if is_out_of_memory(exc) else exc})")
            continue
        rows[spec.key].peak_bytes, rows[spec.key].peak_backend = peak.peak_delta_bytes, peak.backend


def _row(spec: MethodSpec, step: Any, accounting: dict[str, int]) -> MethodResult:
    model = step.model
    return MethodResult(
        method=spec.key, variant=str(getattr(model, "variant", type(model).__name__)),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total_params=sum(p.numel() for p in model.parameters()), saved_bytes=0, **accounting,
    )


def measure_point(workload: Workload, specs: list[MethodSpec], opts: LengthOptions) -> BenchmarkReport:
    """Every method on one workload: accounting, peak memory, interleaved timing; failures keep their row."""
    device, cuda = opts.device, opts.device.startswith("cuda")
    rows: dict[str, MethodResult] = {}
    steps: dict[str, Callable[[], object]] = {}
    notes: list[str] = []
    for spec in specs:
        try:
            step = build_training_step(workload, spec.method, spec.options, device=device)
            rows[spec.key] = _row(spec, step, account_step(step))
            if cuda:
                peak = peak_of(step, spec.key, steps=opts.memory_steps, device=device)
                rows[spec.key].peak_bytes, rows[spec.key].peak_backend = peak.peak_delta_bytes, peak.backend
            steps[spec.key] = step
        except Exception as exc:  # an OOM or a broken method keeps its row; the sweep goes on
            status = "OOM" if is_out_of_memory(exc) else f"error: {type(exc).__name__}: {exc}"
            rows[spec.key] = MethodResult(spec.key, spec.method, 0, 0, 0, 0, 0, 0, status=status)
            notes.append(f"{spec.key}: {status}")
            free_memory(device)
    backbone = workload.backbone_factory().to(device)
    batch = {k: v.to(device) for k, v in workload.batch_factory(workload.batch_size).items() if k != "labels"}
    steps[REFERENCE] = inference_forward(backbone, batch)
    ref_params = sum(p.numel() * p.element_size() for p in backbone.parameters())
    ref_peak: int | None = None
    try:
        if cuda:
            steps[REFERENCE]()  # first-call set-up (workspaces) is not the forward's own memory
            ref_peak = peak_of(steps[REFERENCE], REFERENCE, steps=opts.memory_steps, device=device).peak_delta_bytes
        times = time_interleaved(steps, repeats=opts.rounds, warmup=opts.warmup, device=device,
                                 progress=opts.progress)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        notes.append("interleaved timing ran out of memory with every method resident; no step times here")
        times = {}
    for key, timing in times.items():
        if key in rows:
            rows[key].step_ms, rows[key].step_q25_ms, rows[key].step_q75_ms = (
                timing.median_ms, timing.q25_ms, timing.q75_ms)
    steps.clear()
    free_memory(device)
    if not cuda and opts.measure_memory:
        _fresh_process_peaks(workload, [s for s in specs if rows[s.key].status == "ok"], rows, notes, opts)
        try:
            ref_peak = _isolated_inference_peak(workload, opts).peak_delta_bytes
        except Exception as exc:  # keep the point; say what is missing
            notes.append(f"inference-only peak not measured: {exc}")
    return BenchmarkReport(
        workload=workload.name, description=workload.description, device=device,
        rows=[rows[s.key] for s in specs], reference_forward_ms=times[REFERENCE].median_ms if times else None,
        notes=notes, reference_peak_bytes=ref_peak, reference_parameter_bytes=ref_params,
    )


# ------------------------------------------------------------------------------ the sweep
def _inspect(model: LengthModel) -> tuple[str, int]:
    """The backbone's attention implementation (as transformers names it) and its hidden width."""
    config = model.factory().config
    return str(getattr(config, "_attn_implementation", None) or "the module's own"), int(config.hidden_size)


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return machine_description()


def run_length_sweep(opts: LengthOptions) -> LengthReport:
    """Measure every (model, length) point, writing the report after each one (partial results survive)."""
    from tqdm.auto import tqdm

    specs = _specs(opts.methods)
    started = time.perf_counter()
    models = [get_model(m, opts.width(), opts.random_heads, opts.random_layers) for m in opts.models]
    inspected = {m.name: _inspect(m) for m in models}
    report = LengthReport(
        device=_device_name(opts.device), command=opts.command, notes=list(opts.notes),
        settings={
            "tokens_per_batch": opts.tokens, "max_batch": opts.batch, "rounds": opts.rounds, "warmup": opts.warmup,
            "memory_steps": opts.memory_steps, "threads": torch.get_num_threads(), "methods": list(opts.methods),
            "dropout": "0 everywhere (backbone hidden + attention dropout, LoRA dropout)",
            "unipt_options": UNIPT_OPTIONS, "lora_options": LORA_OPTIONS,
            "batch_inputs": "random token ids; half the rows padded to 3/4 length (attention mask)",
        },
        models={m.name: f"{m.description}; attention: {inspected[m.name][0]}" for m in models},
    )
    plan = [(m, length) for m in models for length in opts.lengths]
    for model, length in tqdm(plan, desc="length sweep", disable=not opts.progress):
        if length > model.max_positions:
            report.notes.append(f"{model.name}: L={length} skipped, the model has {model.max_positions} positions")
            continue
        if opts.budget_s is not None and time.perf_counter() - started > opts.budget_s:
            report.notes.append(f"{model.name}: L={length} not measured, time budget of {opts.budget_s:.0f} s spent")
            continue
        batch = opts.batch_at(length)
        workload = _workload(model, length, batch, inspected[model.name][1])
        point = measure_point(workload, specs, opts)
        report.points.append(LengthPoint(model.name, length, batch, point))
        report.elapsed_s = time.perf_counter() - started
        report.targets = [c.to_dict() for c in length_targets(report)]
        write_length_report(report, opts.out, opts.stem, plot=False)
    report.elapsed_s = time.perf_counter() - started
    report.targets = [c.to_dict() for c in length_targets(report)]
    write_length_report(report, opts.out, opts.stem)
    return report


def output_paths(out: str | Path, stem: str = "length") -> dict[str, Path]:
    """Where :func:`run_length_sweep` writes: ``<stem>.md``, ``<stem>.json``, ``<stem>.png``."""
    base = Path(out)
    return {"markdown": base / f"{stem}.md", "json": base / f"{stem}.json", "png": base / f"{stem}.png"}
