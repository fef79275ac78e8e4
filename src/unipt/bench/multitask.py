"""What one backbone pass for several tasks saves: an epoch of a multi-task run vs one epoch per task alone.

``unipt bench multitask CONFIG [--records 256] [--batch-size 32] [--repeats 2]`` (a run config with ``tasks:``)

Each task alone is the same run config with only that task (and only the towers it reads): the same
data, batch, heads, side networks and optimiser. Epochs are interleaved ``repeats`` times and each
reports its fastest, so a load burst from other processes does not land on one arm only.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from unipt.bench.cache import time_epoch, timed_copy
from unipt.io_streams import add_format_argument, emit
from unipt.train.batching import Collator
from unipt.train.config import RunConfig, load_run_config
from unipt.train.data import load_run_data
from unipt.train.system import build_system


def single_task_config(config: RunConfig, task: str) -> RunConfig:
    """``config`` with only ``task`` and the towers it reads."""
    single = copy.deepcopy(config)
    spec = single.tasks[task]
    single.tasks = {task: spec}
    single.towers = {name: tower for name, tower in single.towers.items() if spec.towers is None or name in spec.towers}
    return single


def benchmark_multitask(config: RunConfig, *, records: int | None = 256, batch_size: int | None = 32,
                        repeats: int = 2, verbose: bool = True) -> dict[str, Any]:
    """Time one training epoch of ``config`` (several tasks, one backbone pass) and of each task alone.

    Returns:
        ``records``, ``batch_size``, ``tasks``, ``multitask`` and ``separate`` (``{task: timing}``) epoch
        timings (``epoch_s`` = fastest, ``all_epochs_s``), ``separate_total_s`` and ``time_saved``
        (``1 - multitask / separate_total``).
    """
    if len(config.tasks) < 2:
        raise ValueError("benchmark_multitask needs a run config with at least two 'tasks'")
    cfg = timed_copy(config, records, batch_size)
    arms = {"multitask": cfg, **{task: single_task_config(cfg, task) for task in cfg.tasks}}
    runs = {}
    for name, arm in arms.items():
        data = load_run_data(arm)
        system = build_system(arm, task_options=data.task_options)
        runs[name] = (system, data.train, Collator(system.tower_info, data.answer_index, data.task_labels), arm)
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for _ in range(max(1, repeats)):
        for name, args in runs.items():
            timings[name].append(time_epoch(*args))
    fastest = {name: {**min(epochs, key=lambda e: e["epoch_s"]), "all_epochs_s": [e["epoch_s"] for e in epochs]}
               for name, epochs in timings.items()}
    separate = {task: fastest[task] for task in cfg.tasks}
    total = sum(t["epoch_s"] for t in separate.values())
    result = {"records": len(runs["multitask"][1]), "batch_size": cfg.train.batch_size, "tasks": list(cfg.tasks),
              "threads": torch.get_num_threads(), "multitask": fastest["multitask"], "separate": separate,
              "separate_total_s": round(total, 3),
              "time_saved": round(1 - fastest["multitask"]["epoch_s"] / total, 4) if total else None}
    if verbose:
        print(format_multitask(result), file=sys.stderr)
    return result


def format_multitask(result: dict[str, Any]) -> str:
    alone = " + ".join(f"{task} {t['epoch_s']:.2f} s" for task, t in result["separate"].items())
    return (f"{result['records']} records, batch {result['batch_size']}, {len(result['tasks'])} tasks: one epoch with "
            f"one backbone pass for every task {result['multitask']['epoch_s']:.2f} s | each task alone: {alone} = "
            f"{result['separate_total_s']:.2f} s | time saved {100 * result['time_saved']:.1f} %")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a run config with several tasks")
    parser.add_argument("--records", type=int, default=256, help="training records per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved epochs per arm (fastest counts)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    add_format_argument(parser)


def run(args: argparse.Namespace) -> int:
    config = load_run_config(args.config, args.overrides)
    result = benchmark_multitask(config, records=args.records, batch_size=args.batch_size, repeats=args.repeats,
                                 verbose=False)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    emit(result, args.format, markdown=format_multitask)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unipt.bench.multitask", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
