"""``unipt cache build | plan | verify``: argparse wiring (``add_cache_parser``) of the run-config cache commands.

Examples::

    unipt cache plan configs/rt.yaml --set data.limit_train=512
    unipt cache build configs/rt.yaml --out caches/rt --dtype fp16 --no-padding
    torchrun --nproc_per_node 2 -m unipt.cli cache build configs/rt.yaml --out caches/rt   # shards split over ranks
    unipt cache verify caches/rt
    unipt train configs/rt.yaml --set train.cache_dir=caches/rt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from accelerate import PartialState

from unipt.cache.manifest import ROLES
from unipt.cache.plan import format_plan
from unipt.cache.shards import DTYPES
from unipt.cache.verify import verify_cache
from unipt.io_streams import add_format_argument, emit, results_only_stdout
from unipt.overrides import add_set_argument
from unipt.process import needs_cpu_flag
from unipt.train.caching import build_cache, plan_cache
from unipt.train.causal_guard import refuse_causal_lm
from unipt.train.config import load_run_config
from unipt.train.system import build_tower


def add_cache_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``cache`` (with ``build``, ``plan``, ``verify``) to an argparse ``subparsers``; each sets ``func``."""
    parser = subparsers.add_parser("cache", help="build / plan / verify an activation cache of frozen taps",
                                   description="Run the frozen backbones once and train UniPT from stored taps.")
    sub = parser.add_subparsers(dest="cache_command", required=True, metavar="{build,plan,verify}")

    build = sub.add_parser("build", help="cache the taps of a run config's splits")
    _common(build)
    build.add_argument("--out", required=True, help="cache folder (one sub-folder per split)")
    build.add_argument("--records-per-shard", type=int, default=None, help="default: about --shard-mb per shard")
    build.add_argument("--shard-mb", type=float, default=256.0, help="target shard size in MB (default 256)")
    build.add_argument("--overwrite", action="store_true", help="replace a cache built for another setup")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    add_format_argument(build)
    build.set_defaults(func=run_build)

    plan = sub.add_parser("plan", help="estimate disk size and build time (probes one batch)")
    _common(plan)
    plan.add_argument("--json", action="store_true", help="the same as --format json")
    add_format_argument(plan, default="md")
    plan.set_defaults(func=run_plan)

    verify = sub.add_parser("verify", help="check every shard's checksum")
    verify.add_argument("path", help="cache folder or one split folder")
    add_format_argument(verify)
    verify.set_defaults(func=run_verify)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config YAML")
    parser.add_argument("--split", action="append", default=None,
                        help="train / eval / test (or the split's name, e.g. val); repeatable; "
                             "default: every split of the config")
    add_set_argument(parser, dest="overrides")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="storage dtype (default fp32)")
    parser.add_argument("--no-padding", action="store_true", help="store only real tokens (re-padded when read)")
    parser.add_argument("--batch-size", type=int, default=None, help="backbone batch size while building")


def _splits(args: argparse.Namespace, config: Any) -> list[str]:
    if args.split:
        return args.split
    return [r for r in ROLES if getattr(config.data, f"{r}_split") is not None]


_LM_CACHE = "train it live (`unipt train`): the backbone's forward runs without an autograd graph either way"


def run_build(args: argparse.Namespace) -> int:
    config = load_run_config(args.config, args.overrides)
    refuse_causal_lm(config, "cache build", _LM_CACHE)
    main = PartialState(cpu=needs_cpu_flag()).is_main_process
    towers = {name: build_tower(name, spec) for name, spec in config.towers.items()}  # loaded once for all splits
    built = {}
    for split in _splits(args, config):
        manifest = build_cache(config, args.out, split, towers=towers, dtype=args.dtype, padding=not args.no_padding,
                               batch_size=args.batch_size, records_per_shard=args.records_per_shard,
                               shard_mb=args.shard_mb, overwrite=args.overwrite, progress=not args.quiet)
        build = manifest.get("build", {})
        built[manifest["split"]] = {"folder": f"{args.out}/{manifest['split']}", "records": manifest["num_records"],
                                    "shards": manifest["num_shards"], "mb": round(build.get("bytes", 0) / 2**20, 2),
                                    "seconds": round(build.get("seconds", 0), 2),
                                    "processes": build.get("world_size", 1)}
    if main:
        emit(built, args.format)
    return 0


def run_plan(args: argparse.Namespace) -> int:
    config = load_run_config(args.config, args.overrides)
    refuse_causal_lm(config, "cache plan", _LM_CACHE)
    towers = {name: build_tower(name, spec) for name, spec in config.towers.items()}
    plans = {}
    for split in _splits(args, config):
        plan = plan_cache(config, split, towers=towers, dtype=args.dtype, padding=not args.no_padding,
                          batch_size=args.batch_size)
        plans[plan["split"]] = plan
    fmt = "json" if args.json else args.format
    emit(plans, fmt, markdown=lambda value: "\n\n".join(format_plan(p) for p in value.values()))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    reports = [{"state": "BROKEN" if report["problems"] else "OK", **report} for report in verify_cache(args.path)]
    emit(reports, args.format)
    return 1 if any(report["problems"] for report in reports) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``build|plan|verify ...`` as ``unipt cache`` runs them (returns the exit code)."""
    parser = argparse.ArgumentParser(prog="unipt cache")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_cache_parser(subparsers)
    args = parser.parse_args(["cache", *(argv if argv is not None else sys.argv[1:])])
    with results_only_stdout():
        return args.func(args)
