"""``unipt bench ...`` / ``python -m unipt.bench ...``: the suites, the scaling sweep, the GPU table.

Examples::

    unipt bench suite                      # the three real suites, ~1 h on 2 CPU cores -> benchmarks/results
    unipt bench quick                      # the same, tiny subsets (~5 min) -> runs/bench-quick
    unipt bench suite --suites rotten_tomatoes --seeds 3
    unipt bench scaling                    # depth 6/12/24 and batch 4..32 on a random BERT -> benchmarks/results
    unipt bench gpu --device cuda          # full-size backbones on one GPU (benchmarks/gpu.sh)
    unipt bench micro --methods full,lora,unipt   # one random-BERT workload, cost only
    unipt bench multitask configs/tuxpaint_multitask.yaml   # several tasks on one backbone pass vs separate runs
    unipt bench length                     # UniPT kernels vs LoRA / full at L = 32..2048 -> benchmarks/results
    unipt bench length --models minilm --lengths 32,128 --rounds 3 --out runs/length   # a quick look
    unipt bench causal                     # decoder LMs: SmolLM2-135M at 256/512/1024 tokens + a 1B Llama
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unipt.bench import causal_lm as causal_bench
from unipt.bench import gpu, multitask
from unipt.bench.gpu import run_gpu
from unipt.bench.length import METHODS, LengthOptions, output_paths, run_length_sweep
from unipt.bench.report import format_markdown, write_report
from unipt.bench.run import run_benchmark
from unipt.bench.scaling import ScalingOptions, run_scaling_sweeps, write_scaling
from unipt.bench.suite_report import run_suites
from unipt.bench.workload import tiny_bert_workload
from unipt.io_streams import add_format_argument, emit, emit_file, results_only_stdout

DEFAULT_METHODS = "frozen,full,bitfit,lora,ia3,lst,unipt"
_THREADS = (
    "torch threads for every measured process (default 1: on a shared machine more threads than free cores "
    "oversubscribe and slow everything down several-fold; 0 = torch's default, for an idle machine)"
)


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` unless 0/None (keep torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def _names(text: str | None) -> list[str] | None:
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


# ------------------------------------------------------------------------------------------ commands
def _suite(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    code = run_suites(args)
    out = Path(args.out)
    emit_file({"json": out / "suite.json", "markdown": out / "suite.md"}, args.format)
    return code


def _quick(args: argparse.Namespace) -> int:
    args.quick = True
    return _suite(args)


def _scaling(args: argparse.Namespace) -> int:
    opts = ScalingOptions(
        depths=_ints(args.depths), batches=_ints(args.batches), hidden=args.hidden, heads=args.heads,
        seq_len=args.seq_len, layers=args.layers, batch_size=args.batch_size,
        methods=tuple(_names(args.methods) or DEFAULT_METHODS.split(",")), repeats=args.repeats,
        warmup=args.warmup, measure_memory=not args.no_memory, device=args.device, progress=not args.no_progress,
        threads=args.threads or None,
    )
    set_threads(args.threads)
    reports = run_scaling_sweeps(opts)
    paths = write_scaling(reports, args.out)
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    emit_file(paths, args.format)
    return 0


def _micro(args: argparse.Namespace) -> int:
    workload = tiny_bert_workload(hidden=args.hidden, layers=args.layers, heads=args.heads, seq_len=args.seq_len,
                                  batch_size=args.batch_size)
    set_threads(args.threads)
    report = run_benchmark(workload, _names(args.methods) or DEFAULT_METHODS.split(","), device=args.device,
                           repeats=args.repeats, warmup=args.warmup, measure_memory=not args.no_memory,
                           progress=not args.no_progress, threads=args.threads or None)
    paths = write_report(report, args.out, stem="micro")
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    emit(format_markdown(report) if args.format == "md" else report.to_dict(), args.format)
    return 0


def _length(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    opts = LengthOptions(
        models=tuple(_names(args.models) or ()), lengths=_ints(args.lengths), batch=args.batch, tokens=args.tokens,
        methods=tuple(_names(args.methods) or ()), rounds=args.rounds, warmup=args.warmup,
        memory_steps=args.memory_steps, measure_memory=not args.no_memory, device=args.device,
        threads=args.threads or None, random_width=args.random_width, random_heads=args.random_heads,
        random_layers=args.random_layers, budget_s=args.budget_s, progress=not args.no_progress, out=args.out,
        command="unipt bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]),
    )
    run_length_sweep(opts)
    paths = output_paths(args.out)
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    emit_file(paths, args.format)
    return 0


def length_arguments(p: argparse.ArgumentParser, out: str = "benchmarks/results") -> None:
    """Options of ``unipt bench length`` (also used by the GPU script's driver)."""
    p.add_argument("--models", default="minilm,random-bert", help="comma-separated: minilm, random-bert, tiny")
    p.add_argument("--lengths", default="32,128,512,2048",
                   help="sequence lengths; lengths beyond a model's positions are skipped (MiniLM: 512)")
    p.add_argument("--batch", type=int, default=32, help="largest batch (sequences)")
    p.add_argument("--tokens", type=int, default=4096,
                   help="tokens per batch at long lengths: batch = min(--batch, tokens / L)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (medians)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--memory-steps", type=int, default=2, help="training steps per peak-memory reading")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory readings")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads (default 2, the issue's setting; 0 = torch's default)")
    p.add_argument("--random-width", type=int, help="width of the random BERT (default 384 on CPU, 768 on CUDA)")
    p.add_argument("--random-heads", type=int, default=12)
    p.add_argument("--random-layers", type=int, default=12)
    p.add_argument("--budget-s", type=float, help="start no new point after this many seconds")
    p.add_argument("--out", default=out, help="where length.md / length.json / length.png go")
    p.add_argument("--no-progress", action="store_true")
    add_format_argument(p, default="md")


def _gpu(args: argparse.Namespace) -> int:
    code = run_gpu(args)
    out = Path(args.out)
    if code == 0:
        emit_file({"json": out / "gpu.json", "markdown": out / "gpu.md"}, args.format)
    return code


# ------------------------------------------------------------------------------------------ parsers
def _suite_arguments(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--suites", default="rotten_tomatoes,fashion_mnist,tuxpaint", help="comma-separated suites")
    p.add_argument("--methods", help="comma-separated subset of each suite's methods (default: all)")
    p.add_argument("--seeds", type=int,
                   help="training runs per method, mean ± std over seeds (default 3; 1 for `bench quick`)")
    p.add_argument("--quick", action="store_true", help="tiny subsets and 1 epoch (~5 minutes in all)")
    p.add_argument("--repeats", type=int, help="timed steps per method (default 8, quick 2)")
    p.add_argument("--warmup", type=int, help="untimed steps per method first (default 1)")
    p.add_argument("--threads", type=int, default=1, help=_THREADS)
    p.add_argument("--out", default=out, help="where the Markdown, JSON and PNG go")
    p.add_argument("--work-dir", default="runs/bench", help="training runs and their logs")
    p.add_argument("--resume", action="store_true",
                   help="reuse training results an interrupted run left in --work-dir (same configs only)")
    p.add_argument("--no-progress", action="store_true")
    add_format_argument(p, default="md")


def _sizes_arguments(p: argparse.ArgumentParser, layers: int, batch: int) -> None:
    p.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated registry names")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--layers", type=int, default=layers)
    p.add_argument("--batch-size", type=int, default=batch)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-memory", action="store_true", help="skip the fresh-process peak-memory readings")
    p.add_argument("--threads", type=int, default=1, help=_THREADS)
    p.add_argument("--no-progress", action="store_true")
    add_format_argument(p, default="md")


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` with its sub-commands to the ``unipt`` command's sub-parsers; returns the ``bench`` parser."""
    bench = subparsers.add_parser("bench", help="side-by-side cost / accuracy benchmarks of every method",
                                  description=__doc__.splitlines()[0])
    sub = bench.add_subparsers(dest="bench_command", required=True)

    p = sub.add_parser("suite", help="accuracy + cost on Rotten Tomatoes, Fashion-MNIST and Tux Paint")
    _suite_arguments(p, "benchmarks/results")
    p.set_defaults(func=_suite)

    p = sub.add_parser("quick", help="the suites on tiny subsets (~5 minutes)")
    _suite_arguments(p, "runs/bench-quick")
    p.set_defaults(func=_quick)

    p = sub.add_parser("scaling", help="memory and step time vs backbone depth and batch size (random BERT)")
    _sizes_arguments(p, layers=12, batch=8)
    p.add_argument("--depths", default="6,12,24")
    p.add_argument("--batches", default="4,8,16,32")
    p.add_argument("--out", default="benchmarks/results")
    p.set_defaults(func=_scaling)

    p = sub.add_parser("micro", help="cost only, one random-BERT workload")
    _sizes_arguments(p, layers=4, batch=16)
    p.add_argument("--out", default="runs/bench-micro")
    p.set_defaults(func=_micro)

    p = sub.add_parser("length", help="UniPT (reference / fused / memory mode) vs LoRA and full against "
                                      "sequence length")
    length_arguments(p)
    p.set_defaults(func=_length)

    p = sub.add_parser("multitask", help="several tasks on one backbone pass vs each task trained alone")
    multitask.add_arguments(p)
    p.set_defaults(func=multitask.run)

    p = sub.add_parser("causal", help="decoder LMs: UniPT (fp32 / int8 backbone) vs LoRA vs full, by length",
                       description=causal_bench.__doc__.splitlines()[0])
    causal_bench.add_arguments(p)
    p.set_defaults(func=causal_bench.run_causal_bench)

    p = sub.add_parser("gpu", help="full-size random backbones at paper batch sizes on one GPU")
    gpu.add_arguments(p)
    add_format_argument(p, default="md")
    p.set_defaults(func=_gpu)
    return bench


def build_parser() -> argparse.ArgumentParser:
    """Stand-alone parser for ``python -m unipt.bench <command>``."""
    parser = argparse.ArgumentParser(prog="python -m unipt", description=__doc__.splitlines()[0])
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    with results_only_stdout():
        return int(args.func(args) or 0)
