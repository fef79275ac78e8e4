"""Full-size backbones at the paper's batch sizes on one GPU: every method, one table (``benchmarks/gpu.sh``).

Random-initialised (no network needed) BERT-base (32 x 128 tokens), ViT-B/16 (64 images, 224 px), a
CLIP ViT-B/32 vision tower via transformers (128 images, 224 px) and ResNet-50 (64 images, 224 px).
Per backbone, in one process on the device:

* each method is built and accounted (exact saved-activation, gradient and AdamW bytes, one step);
* its peak memory: ``torch.cuda.max_memory_allocated`` over ``memory_steps`` steps minus the memory
  allocated just before (live tensors only, so the other resident methods do not change it);
* all surviving methods and the inference-only forward are then timed interleaved.

A method that runs out of memory keeps its row as ``OOM`` and the run goes on. ``--tiny --device cpu``
runs the same code on miniature configs (the tests use it; CPU peaks are in-process RSS readings and
only indicative there).

First, the sequence-length sweep (:mod:`unipt.bench.length`: MiniLM at 32/128/512 tokens and a random
12-layer BERT-base-width encoder with 2048 positions up to 2048 tokens; UniPT reference / fused /
memory mode, LoRA, full) runs on the same device into ``length.md|json|png``; it starts no new point
after ``--length-budget-s`` seconds, so the whole script stays inside its 8 minutes.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unipt.bench.accounting import saved_state_bytes
from unipt.bench.length import LengthOptions, run_length_sweep
from unipt.bench.length_report import format_length
from unipt.bench.memory import free_memory, is_out_of_memory, peak_of
from unipt.bench.report import format_markdown, plot_report
from unipt.bench.results import BenchmarkReport, MethodResult
from unipt.bench.run import REFERENCE, account_step
from unipt.bench.targets import check_targets, checks_from_dicts, format_targets
from unipt.bench.timing import inference_forward, time_interleaved
from unipt.bench.workload import MethodSpec, Workload, build_training_step, random_text_batch
from unipt.parameters import count_parameters

_IA3 = {
    "bert": {"target_modules": ["key", "value", "output.dense"], "feedforward_modules": ["output.dense"]},
    "vit": {"target_modules": ["key", "value", "output.dense"], "feedforward_modules": ["output.dense"]},
    "clip": {"target_modules": ["k_proj", "v_proj", "fc2"], "feedforward_modules": ["fc2"]},
    "resnet": {"target_modules": ["convolution"], "feedforward_modules": []},
}


def _methods(family: str) -> list[MethodSpec]:
    names = ["frozen", "full", "bitfit", "lora", "ia3", "lst", "unipt"]
    return [MethodSpec(m, dict(_IA3[family]) if m == "ia3" else {}) for m in names]


# ------------------------------------------------------------------------ backbones (picklable factories)
def make_backbone(family: str, tiny: bool = False) -> nn.Module:
    """A random-initialised backbone of ``family`` (bert, vit, clip, resnet), full size or ``tiny``."""
    import transformers as tf

    if family == "bert":
        size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64) if tiny else {}
        return tf.BertModel(tf.BertConfig(**size), add_pooling_layer=False)
    if family == "vit":
        size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    image_size=32, patch_size=8) if tiny else {}
        return tf.ViTModel(tf.ViTConfig(**size), add_pooling_layer=False)
    if family == "clip":
        size = (dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, image_size=32,
                     patch_size=8, projection_dim=16) if tiny else
                dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                     image_size=224, patch_size=32, projection_dim=512))
        return tf.CLIPVisionModelWithProjection(tf.CLIPVisionConfig(**size))
    if family == "resnet":
        size = dict(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]) if tiny else {}
        return tf.ResNetModel(tf.ResNetConfig(**size))
    raise ValueError(f"unknown backbone family {family!r}")


def random_image_batch(
    batch_size: int, size: int = 224, num_classes: int = 2, seed: int = 0
) -> dict[str, torch.Tensor]:
    """``pixel_values`` ``[B, 3, size, size]`` and labels from the sign of the mean of the first channel."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch_size, 3, size, size, generator=g)
    labels = (pixels[:, 0].mean((1, 2)) > 0).long() % num_classes
    return {"pixel_values": pixels, "labels": labels}


@dataclass(frozen=True)
class GpuCase:
    """One backbone at one batch: its workload and its methods."""

    workload: Workload
    methods: list[MethodSpec]


def gpu_cases(tiny: bool = False, only: Sequence[str] | None = None) -> list[GpuCase]:
    """The four paper-like workloads (or their tiny versions); ``only`` filters by family name."""
    spec = {  # family: (batch, tokens or image side, feature width, description)
        "bert": (32, 128, 768, "BERT-base, 32 x 128 tokens"),
        "vit": (64, 224, 768, "ViT-B/16, 64 images at 224 px"),
        "clip": (128, 224, 768, "CLIP ViT-B/32 vision tower, 128 images at 224 px"),
        "resnet": (64, 224, 2048, "ResNet-50, 64 images at 224 px"),
    }
    tiny_spec = {"bert": (4, 16, 32), "vit": (4, 32, 32), "clip": (4, 32, 32), "resnet": (4, 64, 32)}
    cases = []
    for family, (batch, extent, width, text) in spec.items():
        if only and family not in only:
            continue
        if tiny:
            batch, extent, width = tiny_spec[family]
            text = f"tiny random {family} ({batch} x {extent})"
        if family == "bert":
            batches: Callable[[int], dict[str, torch.Tensor]] = functools.partial(
                random_text_batch, seq_len=extent, vocab=30522 if not tiny else 128)
        else:
            batches = functools.partial(random_image_batch, size=extent)
        workload = Workload(family, functools.partial(make_backbone, family, tiny), batches, width, 2, batch,
                            f"random-init {text}")
        cases.append(GpuCase(workload, _methods(family)))
    return cases


# ------------------------------------------------------------------------ running
def run_case(case: GpuCase, *, device: str = "cuda", amp_dtype: torch.dtype | None = None, repeats: int = 15,
             warmup: int = 3, memory_steps: int = 2, progress: bool = True) -> BenchmarkReport:
    """Measure every method of ``case`` on ``device``; OOMs and errors become row statuses."""
    wl = case.workload
    rows: dict[str, MethodResult] = {}
    steps: dict[str, Any] = {}
    notes: list[str] = []
    for spec in case.methods:
        try:
            step = build_training_step(wl, spec.method, spec.options, device=device, amp_dtype=amp_dtype)
            acc = account_step(step)
            peak = peak_of(step, spec.key, steps=memory_steps, device=device)
            rows[spec.key] = MethodResult(
                method=spec.key, variant=step.model.variant,
                trainable_params=count_parameters(step.model).trainable,
                total_params=count_parameters(step.model).total,
                saved_bytes=_saved(step.model), **acc, peak_bytes=peak.peak_delta_bytes, peak_backend=peak.backend,
            )
            steps[spec.key] = step
        except Exception as exc:  # OOM or a method that does not fit this backbone: keep the row
            status = "OOM" if is_out_of_memory(exc) else f"error: {type(exc).__name__}: {exc}"
            rows[spec.key] = MethodResult(spec.key, spec.method, 0, 0, 0, 0, 0, 0, status=status)
            notes.append(f"{spec.key}: {status}")
            free_memory(device)
    reference_ms = ref_peak = ref_params = None
    try:
        backbone = wl.backbone_factory().to(device)
        batch = {k: v.to(device) for k, v in wl.batch_factory(wl.batch_size).items() if k != "labels"}
        reference = inference_forward(backbone, batch)
        if amp_dtype is not None:
            reference = _autocast(reference, device, amp_dtype)
        ref_peak = peak_of(reference, REFERENCE, steps=memory_steps, device=device).peak_delta_bytes
        ref_params = sum(p.numel() * p.element_size() for p in backbone.parameters())
        steps[REFERENCE] = reference
    except Exception as exc:
        notes.append(f"inference reference failed: {'OOM' if is_out_of_memory(exc) else exc}")
        free_memory(device)
    try:
        times = time_interleaved(steps, repeats=repeats, warmup=warmup, device=device, progress=progress)
    except Exception as exc:  # e.g. OOM with every method resident: time them one at a time instead
        reason = "OOM" if is_out_of_memory(exc) else exc
        notes.append(f"interleaved timing failed ({reason}); timed one method at a time")
        free_memory(device)
        times = {}
        for key in list(steps):
            try:
                times.update(time_interleaved({key: steps[key]}, repeats=repeats, warmup=warmup, device=device,
                                              progress=False))
            except Exception as inner:
                rows[key].status = "OOM" if is_out_of_memory(inner) else f"error: {inner}"
            steps.pop(key)
            free_memory(device)
    for key, timing in times.items():
        if key in rows:
            rows[key].step_ms, rows[key].step_q25_ms, rows[key].step_q75_ms = (
                timing.median_ms, timing.q25_ms, timing.q75_ms)
    reference_ms = times[REFERENCE].median_ms if REFERENCE in times else None
    if not device.startswith("cuda"):
        notes.append("CPU peaks here are in-process RSS readings with every method resident: indicative only")
    device_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    report = BenchmarkReport(
        workload=wl.name, description=wl.description + (f", autocast {amp_dtype}" if amp_dtype else ", fp32"),
        device=device_name, rows=[rows[s.key] for s in case.methods], reference_forward_ms=reference_ms,
        notes=notes, reference_peak_bytes=ref_peak, reference_parameter_bytes=ref_params,
    )
    report.targets = [c.to_dict() for c in check_targets(report, metrics=False)]
    steps.clear()
    free_memory(device)
    return report


def _saved(model: nn.Module) -> int:
    return saved_state_bytes(model)


def _autocast(fn: Callable[[], None], device: str, dtype: torch.dtype) -> Callable[[], None]:
    def run() -> None:
        with torch.autocast(torch.device(device).type, dtype=dtype):
            fn()

    return run


# ------------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``unipt bench gpu`` / ``python -m unipt.bench.gpu``."""
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny, for tests)")
    parser.add_argument("--tiny", action="store_true", help="miniature configs (CPU smoke test)")
    parser.add_argument("--bf16", action="store_true", help="autocast the forward to bfloat16 (weights fp32)")
    parser.add_argument("--only", default="", help="comma-separated subset of bert,vit,clip,resnet")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--memory-steps", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/gpu")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-length", action="store_true", help="skip the sequence-length sweep")
    parser.add_argument("--length-models", default="minilm,random-bert")
    parser.add_argument("--length-lengths", default="32,128,512,2048")
    parser.add_argument("--length-budget-s", type=float, default=180.0,
                        help="the length sweep starts no new point after this many seconds")


def run_gpu(args: argparse.Namespace) -> int:
    """Run every case, print and write ``gpu.md`` / ``gpu.json`` (+ one PNG per backbone)."""
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("unipt bench gpu: CUDA is not available; use --device cpu --tiny for a smoke test")
        return 2
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_length:
        _length_sweep(args)
    only = [s for s in args.only.split(",") if s]
    sections, reports = [], []
    for case in gpu_cases(args.tiny, only):
        report = run_case(case, device=args.device, amp_dtype=torch.bfloat16 if args.bf16 else None,
                          repeats=args.repeats, warmup=args.warmup, memory_steps=args.memory_steps,
                          progress=not args.no_progress)
        reports.append(report)
        section = format_markdown(report)
        print(section, flush=True)
        sections.append(section)
        plot_report(report, out / f"gpu-{report.workload}.png")
        _write_tables(out, reports, sections, time.perf_counter() - started, args.device)  # survives a timeout
    total = time.perf_counter() - started
    _write_tables(out, reports, sections, total, args.device)
    print(f"wrote {out / 'gpu.md'} and {out / 'gpu.json'} in {total:.0f} s")
    for report in reports:
        print(format_targets(checks_from_dicts(report.targets), f"targets, {report.workload}"))
    return 0


def _write_tables(out: Path, reports: list[BenchmarkReport], sections: list[str], elapsed_s: float,
                  device: str) -> None:
    header = f"# GPU benchmark ({reports[0].device if reports else device}), {elapsed_s / 60:.1f} min\n\n"
    (out / "gpu.md").write_text(header + "\n".join(sections))
    combined = {"elapsed_s": elapsed_s, "reports": [r.to_dict() for r in reports]}
    (out / "gpu.json").write_text(json.dumps(combined, indent=2))


def _length_sweep(args: argparse.Namespace) -> None:
    """The sequence-length sweep on this device into ``<out>/length.*`` (tiny model and lengths with --tiny)."""
    tiny = bool(args.tiny)
    opts = LengthOptions(
        models=("tiny",) if tiny else tuple(m for m in args.length_models.split(",") if m),
        lengths=(16, 64) if tiny else tuple(int(v) for v in args.length_lengths.split(",") if v),
        batch=4 if tiny else 32, tokens=128 if tiny else 4096, rounds=1 if tiny else 10,
        warmup=0 if tiny else 3, memory_steps=1 if tiny else 2, measure_memory=not tiny, device=args.device,
        threads=None, budget_s=args.length_budget_s, progress=not args.no_progress, out=args.out,
        command="bash benchmarks/gpu.sh (unipt bench gpu)",
    )
    print(format_length(run_length_sweep(opts)), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unipt.bench.gpu", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_gpu(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
