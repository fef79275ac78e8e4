"""Scaling sweeps (tiny sizes, no timing asserted) and the ``unipt bench`` command line."""

from __future__ import annotations

import json

from unipt.bench.cli import build_parser
from unipt.bench.scaling import ScalingOptions, format_scaling, load_scaling, run_scaling_sweeps, write_scaling

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_depth_and_batch_sweeps_show_how_costs_grow(tmp_path):
    opts = ScalingOptions(depths=(1, 2), batches=(2, 4), hidden=32, heads=2, seq_len=8, layers=1, batch_size=2,
                          methods=("frozen", "full", "unipt"), repeats=1, warmup=0, measure_memory=False,
                          progress=False)
    depth, batch = run_scaling_sweeps(opts)
    assert (depth.x_name, batch.x_name) == ("depth", "batch")

    def saved(report, method):
        return [p.saved_activation_bytes for p in sorted(report.points, key=lambda p: p.x) if p.method == method]

    # backprop through the backbone: saved activations grow with depth and batch; the probe's do not
    full_depth, frozen_depth = saved(depth, "full"), saved(depth, "frozen")
    assert full_depth[1] > full_depth[0] and frozen_depth[0] == frozen_depth[1]
    assert saved(batch, "full")[1] > saved(batch, "full")[0]
    assert saved(depth, "unipt")[1] < full_depth[1]
    assert set(depth.reference_ms) == {"1.0", "2.0"}
    md = format_scaling(depth)
    assert "| full |" in md and "growth saved act." in md and "inference-only forward" in md
    assert "depth sweep at batch 2" in md

    paths = write_scaling([depth, batch], tmp_path)
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC
    again = load_scaling(paths["json"])
    assert [r.x_name for r in again] == ["depth", "batch"] and len(again[0].points) == len(depth.points)
    assert json.loads(paths["json"].read_text())["sweeps"][1]["notes"] == ["batch sweep at 1 layers"]


def test_bench_subcommands_are_wired():
    parser = build_parser()
    for argv in (["bench", "suite", "--seeds", "3"], ["bench", "quick"], ["bench", "scaling", "--depths", "2,4"],
                 ["bench", "micro"], ["bench", "gpu", "--device", "cpu", "--tiny"]):
        args = parser.parse_args(argv)
        assert callable(args.func)
    suite = parser.parse_args(["bench", "suite", "--seeds", "3"])
    assert suite.seeds == 3 and suite.threads == 1 and suite.out == "benchmarks/results"
    assert parser.parse_args(["bench", "quick"]).out == "runs/bench-quick"


def test_unipt_command_has_bench():
    from unipt.cli import build_parser as unipt_parser

    args = unipt_parser().parse_args(["bench", "scaling", "--no-memory"])
    assert args.command == "bench" and args.bench_command == "scaling" and args.no_memory
