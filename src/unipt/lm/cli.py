"""Command-line pieces for causal LMs: ``unipt generate``, ``unipt llm-example``, and the causal_lm
branches of ``unipt train`` / ``unipt eval``.

    unipt train configs/llm/rt_instructions.yaml          # task causal_lm: any decoder LM, JSONL or text
    unipt eval runs/llm_rt --split test                   # perplexity (+ answer accuracy)
    unipt generate runs/llm_rt --prompt "Is this review fresh or rotten? ..." --max-new-tokens 20
    unipt llm-example                                     # frozen / UniPT / LoRA on SmolLM2-135M (~15 min)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unipt.io_streams import add_format_argument, emit
from unipt.train.config import RunConfig


def train_causal_lm(config: RunConfig, fmt: str = "json") -> int:
    from unipt.lm.train import LMTrainer

    result = LMTrainer(config).fit()
    emit(result.to_dict(), fmt)
    return 0


def eval_causal_lm(run: str, split: str | None, fmt: str = "json") -> int:
    from unipt.lm.train import load_lm_run

    trainer = load_lm_run(run)
    split = split or ("test" if trainer.config.data.test_split else "eval")
    emit(trainer.evaluate(trainer.records(split)), fmt)
    return 0


def run_config_task(run: str) -> str | None:
    """The task name in ``<run>/run_config.yaml`` (``None`` if there is no readable config)."""
    import yaml

    path = Path(run) / "run_config.yaml"
    if not path.is_file():
        return None
    return ((yaml.safe_load(path.read_text()) or {}).get("task") or {}).get("name")


def _generate(args: argparse.Namespace) -> int:
    import torch

    from unipt.lm.train import load_lm_run

    trainer = load_lm_run(args.run, tag=args.checkpoint)
    generator = torch.Generator(device=trainer.device).manual_seed(args.seed) if args.sample else None
    replies = trainer.generate_text(args.prompt, args.max_new_tokens, do_sample=args.sample,
                                    temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                    generator=generator)
    emit([{"prompt": prompt, "response": reply} for prompt, reply in zip(args.prompt, replies, strict=True)],
         args.format)
    return 0


def _example(args: argparse.Namespace) -> int:
    from unipt.lm.example import ExampleOptions, format_report, run_example

    options = ExampleOptions.quick() if args.quick else ExampleOptions()
    options = options.with_overrides(out=args.out, methods=args.methods, threads=args.threads)
    report = run_example(options)
    emit(format_report(report) if args.format == "md" else report, args.format)
    return 0


def add_lm_parsers(sub: Any) -> None:
    p = sub.add_parser("generate", help="generate text with a trained causal_lm run")
    p.add_argument("run", help="a run folder written by `unipt train` with task causal_lm")
    p.add_argument("--prompt", action="append", required=True, help="prompt text (repeatable: one batch)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler (with --sample)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    add_format_argument(p)
    p.set_defaults(func=_generate)

    p = sub.add_parser("llm-example", help="Rotten Tomatoes as instructions on SmolLM2-135M: frozen / UniPT / LoRA")
    p.add_argument("--out", default=None, help="default runs/llm_example (runs/llm_example_quick with --quick)")
    p.add_argument("--quick", action="store_true", help="tiny subsets, a few steps (smoke test, ~3 min)")
    p.add_argument("--methods", help="comma-separated subset of frozen,unipt,lora")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    add_format_argument(p, default="md")
    p.set_defaults(func=_example)
