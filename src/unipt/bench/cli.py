"""``python -m unipt.bench``: the quick benchmark on a random BERT (no downloads), or a scaling sweep.

Examples::

    python -m unipt.bench --out runs/bench
    python -m unipt.bench --methods full,lora,lst,unipt --scaling depth --values 2,4,8 --out runs/depth
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence

from unipt.bench.report import format_markdown, plot_scaling, write_json, write_report
from unipt.bench.run import run_benchmark, run_scaling
from unipt.bench.workload import Workload, tiny_bert_workload

DEFAULT_METHODS = "frozen,full,bitfit,lora,ia3,lst,unipt"


def _workload(args: argparse.Namespace, x_name: str | None = None, value: int | None = None) -> Workload:
    sizes = {
        "hidden": args.hidden,
        "layers": args.layers,
        "heads": args.heads,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
    }
    if x_name is not None:
        sizes[{"depth": "layers", "batch": "batch_size"}[x_name]] = value
    return tiny_bert_workload(**sizes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unipt.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated registry names")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the isolated peak-memory processes")
    parser.add_argument("--scaling", choices=["depth", "batch"], help="sweep one workload size instead")
    parser.add_argument("--values", default="2,4,8", help="values for --scaling")
    parser.add_argument("--out", default="bench-out", help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    options = {
        "device": args.device,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "measure_memory": not args.no_memory,
    }
    if args.scaling:
        values = [int(v) for v in args.values.split(",")]
        scaling = run_scaling(
            functools.partial(_workload, args, args.scaling), values, methods, x_name=args.scaling, **options
        )
        print(write_json(scaling, f"{args.out}/scaling-{args.scaling}.json"))
        print(plot_scaling(scaling, f"{args.out}/scaling-{args.scaling}.png"))
        return 0
    report = run_benchmark(_workload(args), methods, **options)
    paths = write_report(report, args.out)
    print(format_markdown(report))
    print("\n".join(str(p) for p in paths.values()))
    return 0
