"""What caching buys: build time, disk size, and one training epoch from the cache vs live UniPT vs LoRA.

``python -m unipt.bench.cache CONFIG --out DIR [--records 512] [--batch-size 32] [--set k=v ...]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from unipt.batch import Batch
from unipt.cache.collate import CacheCollator
from unipt.cache.dataset import CachedDataset
from unipt.train.batching import Collator
from unipt.train.cache_source import split_fingerprint
from unipt.train.caching import build_cache, system_identity
from unipt.train.config import RunConfig, load_run_config
from unipt.train.data import load_run_data
from unipt.train.optim import build_optimizer
from unipt.train.step import training_step
from unipt.train.system import AdaptedSystem, build_system, build_tower


def time_epoch(system: AdaptedSystem, dataset: Dataset, collate: Callable[[list[dict[str, Any]]], Batch],
               config: RunConfig) -> dict[str, float]:
    """Seconds of one training epoch (loading + collating + forward + backward + AdamW step), single process."""
    torch.manual_seed(config.train.seed)
    loader = DataLoader(dataset, batch_size=config.train.batch_size, shuffle=True, collate_fn=collate, drop_last=True,
                        num_workers=config.train.num_workers,
                        generator=torch.Generator().manual_seed(config.train.seed))
    optimizer = build_optimizer(system, config.optim)
    system.train()
    steps: list[float] = []
    started = time.perf_counter()
    tick = started
    for batch in loader:
        training_step(lambda batch=batch: system(batch)["loss"], optimizer)
        now = time.perf_counter()
        steps.append(now - tick)
        tick = now
    total = time.perf_counter() - started
    ordered = sorted(steps)
    return {"epoch_s": round(total, 3), "steps": len(steps), "median_step_s": round(ordered[len(ordered) // 2], 4)}


def timed_copy(config: RunConfig, records: int | None, batch_size: int | None) -> RunConfig:
    """A copy of ``config`` for timing epochs: no activation cache, at most ``records`` training
    records and ``batch_size`` (``None``: as configured). ``config`` itself is left unchanged."""
    cfg = copy.deepcopy(config)
    cfg.train.cache_dir = None
    if records is not None:
        cfg.data.limit_train = records
    if batch_size is not None:
        cfg.train.batch_size = batch_size
    return cfg


def benchmark_cache(config: RunConfig, out: str | os.PathLike[str], *, records: int | None = 512,
                    batch_size: int | None = 32, dtype: str = "fp32", padding: bool = False, repeats: int = 2,
                    lora_options: dict[str, Any] | None = None, verbose: bool = True) -> dict[str, Any]:
    """Build the training split's cache (``out/train``, replaced), then time epochs from it, live UniPT epochs
    and LoRA epochs (method ``lora`` on every tower, same data, batch and optimiser).

    The three kinds of epoch are interleaved ``repeats`` times and each reports its fastest epoch, so a load
    burst from other processes on the machine does not land on one method only.

    Returns:
        ``build_s``, ``disk_mb``, ``records``, ``batch_size``, ``cache`` / ``live`` / ``lora`` epoch timings
        (``epoch_s`` = fastest, ``all_epochs_s``), ``speedup_vs_live``, ``speedup_vs_lora`` and
        ``break_even_epochs`` (epochs after which build + cached epochs cost less than live epochs).
    """
    cfg = timed_copy(config, records, batch_size)
    towers = {name: build_tower(name, spec) for name, spec in cfg.towers.items()}
    shutil.rmtree(Path(out) / "train", ignore_errors=True)  # time a full build, not a resume
    started = time.perf_counter()
    manifest = build_cache(cfg, out, "train", towers=towers, dtype=dtype, padding=padding, overwrite=True,
                           progress=verbose)
    build_s = time.perf_counter() - started
    data = load_run_data(cfg)
    system = build_system(cfg, towers=towers, task_options=data.task_options)
    cached = CachedDataset(Path(out) / "train", verify="full")
    cached.check({"towers": system_identity(cfg, system), "dataset": split_fingerprint(cfg, "train", data.train)})
    result: dict[str, Any] = {"records": len(data.train), "batch_size": cfg.train.batch_size, "dtype": dtype,
                              "padding": padding, "threads": torch.get_num_threads(), "build_s": round(build_s, 3),
                              "disk_mb": round(manifest["build"]["bytes"] / 2**20, 2)}
    lora_cfg = copy.deepcopy(cfg)
    for tower in lora_cfg.towers.values():
        tower.method, tower.options = "lora", dict(lora_options or {})
    lora = build_system(lora_cfg, task_options=data.task_options)  # fresh backbones: LoRA edits them in place
    runs = {"cache": (system, cached, CacheCollator(data.answer_index), cfg),
            "live": (system, data.train, Collator(system.tower_info, data.answer_index), cfg),
            "lora": (lora, data.train, Collator(lora.tower_info, data.answer_index), lora_cfg)}
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for _ in range(max(1, repeats)):
        for name, args in runs.items():
            timings[name].append(time_epoch(*args))
    for name, epochs in timings.items():
        result[name] = {**min(epochs, key=lambda e: e["epoch_s"]), "all_epochs_s": [e["epoch_s"] for e in epochs]}
    cache_s, live_s, lora_s = (result[k]["epoch_s"] for k in ("cache", "live", "lora"))
    result["speedup_vs_live"] = round(live_s / cache_s, 2)
    result["speedup_vs_lora"] = round(lora_s / cache_s, 2)
    result["break_even_epochs"] = round(build_s / (live_s - cache_s), 2) if live_s > cache_s else None
    if verbose:
        print(format_benchmark(result))
    return result


def format_benchmark(result: dict[str, Any]) -> str:
    return (f"{result['records']} records, batch {result['batch_size']}: cache build {result['build_s']:.1f} s, "
            f"{result['disk_mb']:.1f} MB on disk\n"
            f"epoch from cache {result['cache']['epoch_s']:.2f} s | live UniPT {result['live']['epoch_s']:.2f} s | "
            f"LoRA {result['lora']['epoch_s']:.2f} s\n"
            f"speed-up: {result['speedup_vs_live']:.1f}x vs live UniPT, {result['speedup_vs_lora']:.1f}x vs LoRA; "
            f"the build pays for itself after {result['break_even_epochs']} epochs")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unipt.bench.cache", description=__doc__)
    parser.add_argument("config")
    parser.add_argument("--out", required=True, help="where the benchmark's cache is built")
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--padding", action="store_true", help="store padded rows too")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved epochs per method (fastest counts)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for every method (1 gives steadier numbers on a busy machine)")
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_run_config(args.config, args.overrides)
    result = benchmark_cache(config, args.out, records=args.records, batch_size=args.batch_size, dtype=args.dtype,
                             padding=args.padding, repeats=args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
