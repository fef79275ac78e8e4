"""``unipt bench causal``: what a training step of a decoder LM costs with each method, by length.

    unipt bench causal                                   # SmolLM2-135M at 256/512/1024 tokens + a 1B Llama
    unipt bench causal --lengths 2048 --device cuda      # the GPU script's 2k-token run
    unipt bench causal --backbone random:tiny-llama --lengths 32 --repeats 1 --memory-backbone none  # smoke

Arms: ``unipt`` (fp32 backbone), ``unipt-int8`` (int8 weight-only backbone), ``lora`` (r=8 on q/v, PEFT),
``full`` (every weight), and the backbone's inference-only forward as the floor. Each arm runs in its
own fresh process (its peak memory is its own); inside it every length gets: saved activations (the
bytes autograd keeps for backward, counted exactly), the median step time (forward + backward + AdamW;
next-token loss on every position), and the peak memory of two steps above the memory in use before
them (model and batch loaded; the optimizer's state is created inside them at every length, so full
fine-tuning's gradients and AdamW moments count at each). The memory backbone (a random Llama with the shape of a
1B model) is run at ``--memory-lengths`` for memory only; full fine-tuning of it is not run when it
would not fit (weights + gradients + two AdamW moments: 16 bytes per parameter) and is reported as
that estimate.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ARMS = {
    "unipt": ("unipt", {}),
    "unipt-int8": ("unipt", {"backbone_quantization": "int8"}),
    "lora": ("lora", {"r": 8, "alpha": 16}),
    "full": ("full", {}),
    # CUDA + bitsandbytes only (pip install 'unipt[gpu]'); not in the default set
    "unipt-bnb8": ("unipt", {"backbone_quantization": "bnb-8bit"}),
    "unipt-bnb4": ("unipt", {"backbone_quantization": "bnb-4bit"}),
}


@dataclass
class CausalCost:
    arm: str
    backbone: str
    length: int
    batch_size: int
    trainable_parameters: int
    frozen_weight_mb: float
    saved_activation_mb: float
    step_ms: float | None
    peak_over_loaded_mb: float | None
    peak_mb: float | None
    memory_backend: str
    note: str = ""


def measure_arm(backbone_name: str, arm: str, lengths: list[int], batch_size: int, repeats: int, warmup: int,
                device: str, timed: bool) -> list[dict[str, Any]]:
    """One arm at every length, in this process (call it in a fresh one)."""
    import torch

    from unipt.bench.accounting import SavedActivationMeter
    from unipt.bench.memory import free_memory, peak_of
    from unipt.lm.backbone import load_causal_lm
    from unipt.lm.methods import build_causal_method, weights_bytes

    torch.manual_seed(0)
    # random shapes are created on the device itself: initialising 1B parameters on CPU takes longer than the run
    loaded = load_causal_lm(backbone_name, **({"device": device} if backbone_name.startswith("random:") else {}))
    vocab = loaded.model.config.vocab_size
    if arm == "forward":
        model = loaded.model.to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        optimizer = None
    else:
        method, options = ARMS[arm]
        model = build_causal_method(method, loaded.model, options).to(device).train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen_mb = weights_bytes(model) / 2**20
    results = []
    for length in lengths:
        ids = torch.randint(0, vocab, (batch_size, length), generator=torch.Generator().manual_seed(length))
        ids = ids.to(device)

        def step(ids: torch.Tensor = ids) -> None:
            if optimizer is None:
                with torch.inference_mode():
                    model(input_ids=ids)
                return
            loss = model(ids, labels=ids, logits_to_keep=1).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        saved = 0.0
        if optimizer is not None:
            with SavedActivationMeter(model) as meter:
                loss = model(ids, labels=ids, logits_to_keep=1).loss
            saved = meter.bytes / 2**20
            del loss
        if optimizer is not None:
            optimizer.state.clear()  # every length's peak includes creating AdamW's moments, as a real run's does
            free_memory(device)
        reading = peak_of(step, arm, steps=2, device=device)  # also the warm-up (optimizer state exists after)
        step_ms = None
        if timed:
            for _ in range(warmup):
                step()
            samples = []
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                step()
                _sync(device)
                samples.append(1000 * (time.perf_counter() - start))
            step_ms = statistics.median(samples)
        results.append(asdict(CausalCost(arm, backbone_name, length, batch_size, trainable, frozen_mb, saved, step_ms,
                                          reading.peak_delta_bytes / 2**20, reading.peak_bytes / 2**20,
                                          reading.backend)))
    return results


PRECISIONS = (("float32", "none"), ("bfloat16", "none"), ("float16", "none"), (None, "int8"),
              ("bfloat16", "int8"), (None, "int8-dynamic"))


def precision_bytes(backbone_name: str) -> list[dict[str, Any]]:
    """Frozen-weight memory of ``backbone_name`` in every precision UniPT can run it in (CPU)."""
    import copy

    from unipt.lm.backbone import load_causal_lm
    from unipt.lm.quantize import apply_backbone_precision, frozen_weight_bytes

    original = load_causal_lm(backbone_name).model
    rows = []
    for dtype, quantization in PRECISIONS:
        model = copy.deepcopy(original)
        apply_backbone_precision(model, dtype, quantization)
        label = (dtype or "float32") + ("" if quantization == "none" else f" + {quantization} blocks")
        rows.append({"backbone": backbone_name, "precision": label,
                     "frozen_weight_mb": frozen_weight_bytes(model) / 2**20})
        del model
    return rows


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def full_finetune_estimate(backbone_name: str, length: int, batch_size: int) -> dict[str, Any]:
    """Full fine-tuning of a model too big to run here: 16 bytes per parameter before activations."""
    import torch
    from transformers import LlamaForCausalLM

    from unipt.lm.backbone import llama_1b_config

    if backbone_name != "random:llama-1b":
        raise ValueError(f"no size estimate for {backbone_name}")
    with torch.device("meta"):
        params = sum(p.numel() for p in LlamaForCausalLM(llama_1b_config()).parameters())
    return asdict(CausalCost("full", backbone_name, length, batch_size, params, 0.0, float("nan"), None,
                             16 * params / 2**20, None, "estimate",
                             note="not run: fp32 weights + gradients + AdamW moments = 16 bytes/parameter"))


def run_causal_bench(args: argparse.Namespace) -> int:
    from unipt.bench.isolate import IsolatedError, run_isolated
    from unipt.io_streams import emit_file

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lengths = [int(v) for v in args.lengths.split(",")]
    rows: list[dict[str, Any]] = []
    estimates: list[dict[str, Any]] = []
    jobs = [(args.backbone, arm, lengths, True) for arm in ["forward", *args.arms.split(",")]]
    if args.memory_backbone != "none":
        memory_lengths = [int(v) for v in args.memory_lengths.split(",")]
        arms = [a for a in args.arms.split(",") if a != "full" or args.device.startswith("cuda")]
        jobs += [(args.memory_backbone, arm, memory_lengths, False) for arm in ["forward", *arms]]
        if "full" in args.arms.split(",") and not args.device.startswith("cuda"):
            estimates = [full_finetune_estimate(args.memory_backbone, n, args.batch_size) for n in memory_lengths]
    for backbone, arm, arm_lengths, timed in jobs:
        print(f"[{backbone} / {arm}] lengths {arm_lengths}", file=sys.stderr, flush=True)
        try:
            rows += run_isolated(measure_arm, backbone, arm, arm_lengths, args.batch_size, args.repeats, args.warmup,
                                 args.device, timed, threads=args.threads or None, timeout_s=args.timeout,
                                 log_path=out / "logs" / f"causal-{backbone.replace(':', '_')}-{arm}.log")
        except IsolatedError as err:
            note = "out of memory" if err.out_of_memory else f"failed: {str(err).splitlines()[0][:120]}"
            rows += [asdict(CausalCost(arm, backbone, n, args.batch_size, 0, float("nan"), float("nan"), None, None,
                                       None, "-", note)) for n in arm_lengths]
    rows += estimates
    precisions = []
    if args.precisions:
        print(f"[{args.backbone}] frozen-weight memory per precision", file=sys.stderr, flush=True)
        precisions = run_isolated(precision_bytes, args.backbone, threads=args.threads or None, timeout_s=args.timeout,
                                  log_path=out / "logs" / "causal-precisions.log")
    report = {"options": vars(args) | {"func": None}, "rows": rows, "precisions": precisions}
    (out / "causal.json").write_text(json.dumps(report, indent=2))
    table = format_causal(rows) + ("\n" + format_precisions(precisions) if precisions else "")
    (out / "causal.md").write_text(table)
    plot_causal(rows, args.backbone, out / "causal.png")
    print(f"wrote {out / 'causal.md'}, {out / 'causal.json'}, {out / 'causal.png'}", file=sys.stderr)
    emit_file({"json": out / "causal.json", "markdown": out / "causal.md"}, args.format)
    return 0


def format_causal(rows: list[dict[str, Any]]) -> str:
    def number(value: float | None, digits: int = 0) -> str:
        return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"

    lines = ["| backbone | arm | tokens x batch | trainable params | frozen weights MiB | saved activations MiB | "
             "step ms | peak over loaded MiB | note |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['backbone']} | {r['arm']} | {r['length']} x {r['batch_size']} | "
                     f"{r['trainable_parameters']:,} | {number(r['frozen_weight_mb'], 1)} | "
                     f"{number(r['saved_activation_mb'], 1)} | {number(r['step_ms'])} | "
                     f"{number(r['peak_over_loaded_mb'])} | {r['note']} |")
    return "\n".join(lines) + "\n"


def format_precisions(rows: list[dict[str, Any]]) -> str:
    lines = ["| backbone | frozen weights | MiB |", "|---|---|---:|"]
    lines += [f"| {r['backbone']} | {r['precision']} | {r['frozen_weight_mb']:,.1f} |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_causal(rows: list[dict[str, Any]], backbone: str, path: Path) -> None:
    from unipt.bench.report import _pyplot, save_figure

    plt = _pyplot()
    timed = [r for r in rows if r["backbone"] == backbone and r["arm"] != "forward"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key, title in zip(axes, ("step_ms", "saved_activation_mb", "peak_over_loaded_mb"),
                              ("ms per step", "saved activations MiB", "peak over loaded model MiB"), strict=True):
        for arm in dict.fromkeys(r["arm"] for r in timed):
            points = [(r["length"], r[key]) for r in timed if r["arm"] == arm and r[key] is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=arm)
        ax.set(xlabel="tokens", title=f"{backbone}: {title}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from unipt.io_streams import add_format_argument

    p.add_argument("--backbone", default="smollm2-135m", help="timed backbone (packaged, random: or a folder)")
    p.add_argument("--lengths", default="256,512,1024")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--arms", default="unipt,unipt-int8,lora,full", help=f"comma-separated subset of {list(ARMS)}")
    p.add_argument("--memory-backbone", default="random:llama-1b", help="'none' to skip the memory-only model")
    p.add_argument("--memory-lengths", default="256")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per arm before it is recorded as failed")
    p.add_argument("--no-precisions", dest="precisions", action="store_false",
                   help="skip the table of frozen-weight memory per precision")
    p.add_argument("--out", default="benchmarks/results")
    add_format_argument(p, default="md")
