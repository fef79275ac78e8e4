"""The embedded default (``unipt demo``): image-text retrieval on the packaged Tux Paint stamps.

EfficientNet-Lite0 (images) + MiniLM (text), both frozen. Two runs on the same seeded split, the same
head (GPO pooling + projection) and the same budget:

* ``frozen``: the frozen final features, only the head trains (a linear probe);
* ``unipt``: UniPT side networks on both towers (VSE-infinity presets) + the same head.

Because neither run changes the backbones, each split's taps are computed once and cached
(``unipt cache``), so every epoch after that costs only the side networks. Each run happens in its
own fresh process, so its peak memory is its own. A live training step (backbones running) is then
timed against the backbones' inference-only forward, with the exact bytes autograd saves.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from unipt.bench.accounting import SavedActivationMeter
from unipt.bench.timing import time_interleaved
from unipt.data import load_dataset
from unipt.train import Trainer, load_run_config
from unipt.train.batching import Collator
from unipt.train.caching import build_cache
from unipt.train.step import training_step
from unipt.train.system import Tower, build_system

# 471 training pairs are few for side networks that replace the frozen output (VSE-infinity's variant
# overfits and lands below the frozen probe): add U to the frozen output instead (CLIP4Clip's residual
# variant) and start U at zero, so training starts exactly at the frozen features.
SMALL_DATA = {"output_mode": "residual", "zero_init_up": True, "out_width": None}
DEMO_RUN: dict[str, Any] = {
    "towers": {
        "image": {"backbone": "efficientnet-lite0", "method": "unipt",
                  "options": {"preset": "vse_cnn", "reduction": 4, "out_width": 512, **SMALL_DATA}},
        "text": {"backbone": "minilm", "method": "unipt", "max_length": 32,
                 "options": {"preset": "vse_text", "reduction": 2, "out_width": 512, **SMALL_DATA}},
    },
    "task": {"name": "retrieval", "options": {"embed_dim": 512, "loss": "triplet", "margin": 0.2}},
    "data": {"dataset": "tuxpaint", "options": {"seed": 0}},
    "optim": {"lr": 5e-4, "schedule": "cosine", "warmup_ratio": 0.05, "weight_decay": 1e-4, "grad_clip": 2.0},
    "train": {"epochs": 15, "batch_size": 32, "eval_batch_size": 64, "seed": 0},
}
METHODS = ("unipt", "frozen")  # UniPT first: it builds the activation cache both arms read


def demo_config(method: str, out: Path, quick: bool = False) -> dict[str, Any]:
    """The run config of one demo arm (plain dict, YAML-ready)."""
    config = json.loads(json.dumps(DEMO_RUN))
    for tower in config["towers"].values():
        tower["method"] = method
        if method != "unipt":
            tower["options"] = {}
    config["train"]["output_dir"] = str(out / method)
    config["train"]["cache_dir"] = str(out / "cache")
    config["train"]["resume"] = False
    if quick:
        config["train"]["epochs"] = 2
        config["data"]["limit_train"] = 96
        config["data"]["limit_eval"] = 64
    return config


def _train_arm(config: dict[str, Any]) -> dict[str, Any]:
    """Build the caches and train one arm (runs in a fresh process)."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    run = load_run_config(None, [], base=config)
    started = time.perf_counter()
    set_seed(run.train.seed)  # the side networks' and the head's initial weights, as Trainer(run) seeds them
    system = build_system(run)
    towers = {name: _tower(system, name) for name in system.towers}
    for split in ("train", "eval", "test"):
        build_cache(run, run.train.cache_dir, split, towers=towers, progress=True)
    cache_seconds = time.perf_counter() - started
    result = Trainer(run, system=system).fit()
    summary = result.to_dict()
    summary["cache_build_s"] = cache_seconds
    summary["history"] = [{k: v for k, v in r.items()} for r in result.history]
    return summary


def _tower(system: Any, name: str) -> Any:
    field, backbone = system.tower_info[name]
    return Tower(name, field, backbone, system.towers[name])


def run_arms(out: Path, quick: bool = False) -> dict[str, dict[str, Any]]:
    """Train every arm, each in its own spawned process; returns their summaries."""
    results = {}
    context = multiprocessing.get_context("spawn")
    for method in METHODS:
        print(f"\n=== {method}: caching the frozen backbones' taps, then training ===", flush=True)
        with context.Pool(1) as pool:
            results[method] = pool.apply(_train_arm, (demo_config(method, out, quick),))
    return results


def live_step_costs(batch_size: int = 32) -> dict[str, dict[str, float]]:
    """Time one live training step per arm (backbones running) vs the backbones' inference forward.

    Returns per arm: median step ms, saved-activation MB of one step, and the inference-only ms.
    """
    records = load_dataset("tuxpaint", "train", seed=0)
    batch_records = [records[i] for i in range(batch_size)]
    steps, saved = {}, {}
    backbones = None
    for method in METHODS:
        run = load_run_config(None, [], base=demo_config(method, Path("/tmp"), quick=True))
        system = build_system(run).train()
        batch = Collator(system.tower_info)(batch_records)
        optimizer = torch.optim.AdamW([p for p in system.parameters() if p.requires_grad], lr=1e-4)

        def step(system: Any = system, batch: Any = batch, optimizer: Any = optimizer) -> None:
            training_step(lambda: system(batch)["loss"], optimizer)

        with SavedActivationMeter() as meter:
            system(batch)["loss"].backward()
        saved[method] = meter.bytes / 2**20
        steps[method] = step
        if backbones is None:
            backbones = [(system.towers[n].backbone, batch.towers[n].inputs) for n in system.towers]

    def inference() -> None:
        with torch.inference_mode():
            for model, inputs in backbones:
                model(inputs["pixel_values"]) if "pixel_values" in inputs else model(**inputs)

    timings = time_interleaved({**steps, "inference": inference}, repeats=5, warmup=1, progress=False)
    costs = {m: {"step_ms": 1000 * timings[m].median_ms / 1000, "saved_activation_mb": saved[m]} for m in METHODS}
    costs["inference"] = {"step_ms": 1000 * timings["inference"].median_ms / 1000, "saved_activation_mb": 0.0}
    return costs


def run_demo(out: Path, quick: bool = False) -> dict[str, Any]:
    """The whole demo: two arms, live costs, ``report.md`` and ``demo.png``; returns the report (its
    Markdown table under ``"table"``)."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    arms = run_arms(out, quick)
    print("\n=== timing one live training step (backbones running) ===", flush=True)
    costs = live_step_costs()
    report = {"arms": arms, "live": costs, "seconds": time.perf_counter() - started,
              "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}"}
    (out / "demo.json").write_text(json.dumps(report, indent=2, default=str))
    table = format_demo_table(arms, costs)
    (out / "report.md").write_text(table + f"\n\nTotal demo time: {report['seconds']:.0f} s.\n")
    plot_demo(arms, out / "demo.png")
    report["table"] = table  # `unipt demo` prints it on stdout (--format md)
    print(f"\nwrote {out / 'report.md'}, {out / 'demo.png'} ({report['seconds']:.0f} s in all)")
    return report


def format_demo_table(arms: dict[str, dict[str, Any]], costs: dict[str, dict[str, float]]) -> str:
    """Markdown: retrieval (test split) and costs of each arm side by side."""
    keys = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"]
    lines = [
        "| arm | " + " | ".join(keys) + " | trainable params | peak RSS MB (cached run) | step ms (cached) "
        "| live step ms | live saved-activation MB |",
        "|" + "---|" * (len(keys) + 6),
    ]
    for method, summary in arms.items():
        test = summary.get("test_metrics") or summary.get("best_metrics") or {}
        live = costs.get(method, {})
        cells = [f"{test.get(k, float('nan')):.1f}" for k in keys]
        lines.append(
            f"| {method} | " + " | ".join(cells) + f" | {summary['trainable_parameters']:,} | "
            f"{summary['peak_memory_mb']:.0f} | {summary['step_time_ms']:.1f} | {live.get('step_ms', 0):.0f} | "
            f"{live.get('saved_activation_mb', 0):.1f} |"
        )
    lines.append(f"\nBackbones' inference-only forward on the same batch: {costs['inference']['step_ms']:.0f} ms.")
    if "unipt" in arms and "frozen" in arms:
        gain = _rsum(arms["unipt"]) - _rsum(arms["frozen"])
        lines.append(f"UniPT - frozen rSum on the test split: {gain:+.1f}.")
    return "\n".join(lines)


def _rsum(summary: dict[str, Any]) -> float:
    return (summary.get("test_metrics") or summary.get("best_metrics") or {}).get("rsum", float("nan"))


def plot_demo(arms: dict[str, dict[str, Any]], path: Path) -> None:
    """Two panels: training loss per epoch and validation rSum per epoch, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_rsum) = plt.subplots(1, 2, figsize=(10, 3.6))
    for method, summary in arms.items():
        history = summary["history"]
        epochs = [r["epoch"] for r in history]
        ax_loss.plot(epochs, [statistics.fmean(r["losses"]) for r in history], marker="o", label=method)
        ax_rsum.plot(epochs, [r["eval"]["rsum"] for r in history if r.get("eval")], marker="o", label=method)
    ax_loss.set(xlabel="epoch", ylabel="train loss (hinge, log scale)", title="Tux Paint retrieval: training loss",
                yscale="log")
    ax_rsum.set(xlabel="epoch", ylabel="validation rSum", title="validation rSum (higher is better)")
    for ax in (ax_loss, ax_rsum):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
