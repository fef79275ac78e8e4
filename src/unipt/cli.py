"""The ``unipt`` command: demo, train, eval, predict, bench, cache, presets.

    unipt demo                                   # the embedded default (packaged weights + data)
    unipt train configs/rotten_tomatoes.yaml --set train.epochs=3 data.limit_train=256 --report-to tensorboard
    unipt eval runs/rt --split test
    unipt predict runs/rt --text "a moving, funny film"
    unipt generate runs/llm_rt --prompt "..."    # a causal_lm run (configs/llm/)
    unipt bench suite | unipt bench scaling      # side-by-side cost/accuracy tables
    unipt cache build configs/tuxpaint.yaml --out cache/tux
    unipt plan configs/rotten_tomatoes.yaml      # predicted peak training memory, UniPT vs baselines

Standard output carries only the result (``--format json|md``); logs and progress bars go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from unipt.bench.cli import add_bench_parser
from unipt.bench.plan_report import add_plan_parser
from unipt.config import PRESETS
from unipt.demo import run_demo
from unipt.errors import cli_error_code, debug_requested
from unipt.io_streams import add_format_argument, emit, results_only_stdout
from unipt.lm.cli import add_lm_parsers, eval_causal_lm, run_config_task
from unipt.overrides import add_set_argument
from unipt.process import end_distributed
from unipt.train import Trainer, load_run_config
from unipt.train.cache_cli import add_cache_parser
from unipt.train.inference import load_run, predict
from unipt.train.preflight import check_output_dir


def _train(args: argparse.Namespace) -> int:
    overrides = list(args.set or [])
    if args.report_to:
        overrides.append(f"train.report_to={json.dumps(args.report_to)}")
    if args.cache:
        overrides.append(f"train.cache_dir={args.cache}")
    if args.output_dir:
        overrides.append(f"train.output_dir={args.output_dir}")
    config = load_run_config(args.config, overrides)
    if args.compile:  # every UniPT side network through torch.compile
        for tower in config.towers.values():
            if tower.method == "unipt":
                tower.options["compile"] = True
    check_output_dir(config.train.output_dir)  # before any backbone or data is loaded
    from unipt.lm.cli import train_causal_lm
    from unipt.train.causal_guard import is_causal_lm_run

    if is_causal_lm_run(config):
        return train_causal_lm(config, args.format)
    trainer = Trainer(config)
    result = trainer.fit()
    if trainer.main:
        emit(result.to_dict(), args.format)
    return 0


def _eval(args: argparse.Namespace) -> int:
    if run_config_task(args.run) == "causal_lm":
        return eval_causal_lm(args.run, args.split, args.format)
    trainer = load_run(args.run, overrides=args.set)
    split = args.split or ("test" if trainer.data.test is not None else "eval")
    dataset = {"eval": trainer.data.eval, "test": trainer.data.test, "train": trainer.data.train}[split]
    if dataset is None:
        raise ValueError(f"the run config has no {split} split (its data.test_split is null); use --split eval")
    print(f"evaluating the {split} split", file=sys.stderr)
    emit(trainer.evaluate(dataset, split), args.format)
    return 0


def _predict(args: argparse.Namespace) -> int:
    if not args.text and not args.image:
        raise ValueError("nothing to predict: give --text TEXT or --image PATH (each repeatable)")
    trainer = load_run(args.run, overrides=args.set)
    emit(predict(trainer, texts=args.text, images=args.image, top_k=args.top_k), args.format)
    return 0


def _demo(args: argparse.Namespace) -> int:
    report = run_demo(Path(args.out), quick=args.quick)
    emit(report["table"] if args.format == "md" else report, args.format)
    return 0


def _presets(args: argparse.Namespace) -> int:
    emit(PRESETS, args.format)
    return 0


def _tracker_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unipt", description="Universal Parallel Tuning for frozen backbones")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks (also UNIPT_DEBUG=1); accepted anywhere on the command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="image-text retrieval on Tux Paint stamps: frozen probe vs UniPT")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a much shorter run (smoke test)")
    add_format_argument(p, default="md")
    p.set_defaults(func=_demo)

    p = sub.add_parser("train", help="train a run config (YAML)")
    p.add_argument("config")
    add_set_argument(p)
    p.add_argument("--cache", help="train from an activation cache built by `unipt cache build`")
    p.add_argument("--output-dir")
    p.add_argument("--compile", action="store_true", help="compile the UniPT side networks with torch.compile")
    p.add_argument("--report-to", type=_tracker_names, metavar="TRACKER[,TRACKER]",
                   help="experiment trackers (train.report_to): tensorboard, wandb, mlflow, aim, comma-separated")
    add_format_argument(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="evaluate the best checkpoint of a run")
    p.add_argument("run")
    p.add_argument("--split", choices=["eval", "test", "train"], help="default: test if the run has one, else eval")
    add_set_argument(p)
    add_format_argument(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser("predict", help="classify texts/images or retrieve with a trained run")
    p.add_argument("run")
    p.add_argument("--text", action="append", help="input text (repeatable)")
    p.add_argument("--image", action="append", help="input image path (repeatable)")
    p.add_argument("--top-k", type=int, default=3)
    add_set_argument(p)
    add_format_argument(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser("presets", help="list the UniPT presets")
    add_format_argument(p)
    p.set_defaults(func=_presets)

    add_bench_parser(sub)
    add_plan_parser(sub)
    add_cache_parser(sub)
    add_lm_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``unipt`` command. Errors are one line on stderr (exit code 2 for bad input, see
    :mod:`unipt.errors`); ``--debug`` or ``UNIPT_DEBUG=1`` adds the traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested("--debug" in argv)
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    try:
        with results_only_stdout():  # stdout carries the result only; logs and library chatter go to stderr
            return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as err:
        return cli_error_code(args.command, err, debug)
    finally:
        end_distributed()


if __name__ == "__main__":
    raise SystemExit(main())
