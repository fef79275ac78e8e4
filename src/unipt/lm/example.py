"""The packaged LLM example: Rotten Tomatoes reviews as instructions on SmolLM2-135M-Instruct.

    unipt llm-example                 # frozen (zero-shot) / UniPT / LoRA, ~15 min on 2 idle cores
    unipt llm-example --quick         # tiny subsets, 2 steps: a smoke test of the same path

Each arm is one ``unipt train`` run (task ``causal_lm``, dataset ``rotten_tomatoes_instructions``) in a
fresh process, so its peak memory is its own. The prompt is the chat-templated instruction "Is this
movie review fresh (positive) or rotten (negative)? Answer with one word: fresh or rotten." plus the
review; the response is the word (+ end of turn). Reported per arm: accuracy of the greedily generated
answer (its first word), held-out perplexity of the response tokens, median time per training step,
peak memory during training + evaluation (and above the loaded model), trainable parameters.
No model selection happens (one epoch, a fixed schedule), so the held-out split is scored once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ARMS = ("frozen", "unipt", "lora")


@dataclass
class ExampleOptions:
    """Sizes and settings of the example (the defaults are the full run)."""

    out: str = "runs/llm_example"
    methods: tuple[str, ...] = ARMS
    train_size: int = 1280
    test_size: int = 400
    batch_size: int = 8
    eval_batch_size: int = 16
    epochs: int = 1
    max_steps: int | None = None
    max_length: int = 160
    lr: dict[str, float] = field(default_factory=lambda: {"unipt": 1e-3, "lora": 5e-4})
    options: dict[str, dict[str, Any]] = field(default_factory=lambda: {"unipt": {}, "lora": {"r": 8, "alpha": 16}})
    threads: int | None = None
    seed: int = 0

    @classmethod
    def quick(cls) -> ExampleOptions:
        return cls(out="runs/llm_example_quick", train_size=16, test_size=8, batch_size=4, eval_batch_size=8,
                   max_steps=2)

    def with_overrides(self, out: str | None = None, methods: str | None = None,
                       threads: int | None = None) -> ExampleOptions:
        chosen = tuple(m.strip() for m in methods.split(",") if m.strip()) if methods else self.methods
        unknown = sorted(set(chosen) - set(ARMS))
        if unknown:
            raise ValueError(f"unknown arms {unknown}; choose from {list(ARMS)}")
        return dataclasses.replace(self, out=out or self.out, methods=chosen, threads=threads or self.threads)


def run_config(options: ExampleOptions, method: str) -> dict[str, Any]:
    """The ``unipt train`` config of one arm."""
    return {
        "towers": {"lm": {"backbone": "smollm2-135m", "method": method, "max_length": options.max_length,
                          "options": dict(options.options.get(method, {}))}},
        "task": {"name": "causal_lm", "options": {"chat_template": True, "answer_accuracy": True, "max_new_tokens": 3}},
        "data": {"dataset": "rotten_tomatoes_instructions", "options": {"seed": options.seed},
                 "train_split": "train", "eval_split": "test", "test_split": None,
                 "limit_train": options.train_size, "limit_eval": options.test_size},
        "optim": {"lr": options.lr.get(method, 1e-3), "schedule": "cosine", "warmup_ratio": 0.1,
                  "weight_decay": 0.0, "grad_clip": 1.0},
        "train": {"epochs": options.epochs, "batch_size": options.batch_size,
                  "eval_batch_size": options.eval_batch_size, "max_steps_per_epoch": options.max_steps,
                  "seed": options.seed, "output_dir": str(Path(options.out) / method)},
    }


def run_example(options: ExampleOptions) -> dict[str, Any]:
    """Train / score every arm in its own process; write ``report.md``, ``report.json``, ``llm_example.png``."""
    out = Path(options.out)
    (out / "configs").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if options.threads:
        env["OMP_NUM_THREADS"] = str(options.threads)
    rows = []
    for method in options.methods:
        config = out / "configs" / f"{method}.yaml"
        config.write_text(yaml.safe_dump(run_config(options, method), sort_keys=False))
        started = time.perf_counter()
        print(f"[{method}] training / scoring (log: {out / 'logs' / f'{method}.log'})", file=sys.stderr, flush=True)
        with open(out / "logs" / f"{method}.log", "w") as log:
            done = subprocess.run([sys.executable, "-m", "unipt.cli", "train", str(config)], stdout=log,
                                  stderr=subprocess.STDOUT, env=env, check=False)
        if done.returncode != 0:
            tail = (out / "logs" / f"{method}.log").read_text()[-2000:]
            raise RuntimeError(f"the {method} arm failed (exit {done.returncode}):\n{tail}")
        summary = json.loads((out / method / "summary.json").read_text())
        rows.append(_row(method, summary, time.perf_counter() - started))
    report = {"options": dataclasses.asdict(options), "rows": rows}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(format_report(report))
    plot_report(report, out / "llm_example.png")
    return report


def _row(method: str, summary: dict[str, Any], wall_s: float) -> dict[str, Any]:
    metrics = summary["best_metrics"]
    return {
        "method": method,
        "accuracy": 100 * metrics.get("accuracy", float("nan")),
        "perplexity": metrics["perplexity"],
        "trainable_parameters": summary["trainable_parameters"],
        "step_ms": summary["step_time_ms"],
        "peak_mb": summary["peak_memory_mb"],
        "peak_over_loaded_mb": summary["peak_memory_mb"] - summary["memory_baseline_mb"],
        "frozen_weight_mb": summary["frozen_weight_bytes"] / 2**20,
        "wall_s": wall_s,
    }


LABELS = {"frozen": "frozen (zero-shot)", "unipt": "UniPT (frozen backbone + causal side network)",
          "lora": "LoRA r=8 on q/v (PEFT)"}


def format_report(report: dict[str, Any]) -> str:
    o = report["options"]
    lines = [
        f"SmolLM2-135M-Instruct, Rotten Tomatoes as instructions: {o['train_size']} training / {o['test_size']} "
        f"held-out reviews, {o['epochs']} epoch(s), batch {o['batch_size']}, max {o['max_length']} tokens"
        + (f", at most {o['max_steps']} steps" if o["max_steps"] else ""),
        "",
        "| arm | answer accuracy % | held-out perplexity | trainable params | step ms | peak MiB | peak over loaded "
        "model MiB | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        step = "—" if r["step_ms"] != r["step_ms"] else f"{r['step_ms']:.0f}"  # NaN: nothing trains
        lines.append(f"| {LABELS.get(r['method'], r['method'])} | {r['accuracy']:.1f} | {r['perplexity']:.3f} | "
                     f"{r['trainable_parameters']:,} | {step} | {r['peak_mb']:.0f} | {r['peak_over_loaded_mb']:.0f} | "
                     f"{r['wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    names = [r["method"] for r in rows]
    panels = [("accuracy", "answer accuracy %"), ("perplexity", "held-out perplexity"),
              ("step_ms", "ms per training step"), ("peak_over_loaded_mb", "peak MiB over the loaded model")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3))
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = [0.0 if r[key] != r[key] else r[key] for r in rows]
        ax.bar(names, values, color=["#999999", "#1f77b4", "#ff7f0e"][: len(names)])
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle("SmolLM2-135M, Rotten Tomatoes as instructions", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
