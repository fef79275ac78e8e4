"""Two CPU processes (torchrun, gloo) x batch 8 == one process x batch 16: same trained side weights, same
metrics; the cache built by two ranks is byte-identical to a one-process build; DDP all-reduces only what trains."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("ddp_run.py")
_spec = importlib.util.spec_from_file_location("tiny_for_ddp", Path(__file__).parents[1] / "cache" / "tiny.py")
tiny = sys.modules.setdefault("tiny_for_ddp", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(tiny)
# One bias shared by every layer's confidence: the softmax over layers cancels it (true gradient 0), so AdamW
# turns float noise into lr-sized steps; it never changes the outputs. Every other weight must match.
NOISE_ONLY = ("aggregation.gate.bias",)


@pytest.mark.slow
def test_two_process_training_and_cache_build_equal_one_process(tmp_path):
    data = tiny.write_data(tmp_path / "data")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    runs = {
        "one": [sys.executable, str(SCRIPT), str(data), str(tmp_path / "one"), "16"],
        "two": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                str(SCRIPT), str(data), str(tmp_path / "two"), "8"],
    }
    procs = {k: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k, cmd in runs.items()}
    for name, proc in procs.items():
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"{name} run failed:\n{output[-4000:]}"
    one = json.loads((tmp_path / "one" / "result.json").read_text())
    two = json.loads((tmp_path / "two" / "result.json").read_text())

    assert one["world_size"] == 1 and two["world_size"] == 2 and two["distributed_type"].endswith("MULTI_CPU")
    assert two["wrapped"] == "DistributedDataParallel"
    assert two["reduced_numel"] == two["trainable_numel"] > 0 and two["frozen_numel"] > 0  # backbone not reduced
    assert two["build_world_size"] == {"train": 2, "eval": 2, "test": 2}
    assert two["shards"] == one["shards"] and len(one["shards"]["train"]) == 4  # byte-identical shards

    for run in ("live", "cached"):
        assert two[run]["best"] == pytest.approx(one[run]["best"])
        assert two[run]["test"] == pytest.approx(one[run]["test"])
    reference = load_file(str(tmp_path / "one" / "live.safetensors"))
    for run in ("live", "cached"):
        weights = load_file(str(tmp_path / "two" / f"{run}.safetensors"))
        assert set(weights) == set(reference)
        for key, value in reference.items():
            if not key.endswith(NOISE_ONLY):
                torch.testing.assert_close(weights[key], value, atol=1e-5, rtol=0, msg=f"{run}: {key}")
    initial = load_file(str(tmp_path / "one" / "initial.safetensors"))
    assert max(float((reference[k] - initial[k]).abs().max()) for k in reference) > 1e-2  # training moved them


def test_accelerate_is_told_to_use_cpu_only_when_it_must(monkeypatch):
    from unipt.process import needs_cpu_flag

    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert needs_cpu_flag() is False  # one process: Accelerate's own device choice
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert needs_cpu_flag() is (not torch.accelerator.is_available())  # torchrun on a CPU-only machine
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")  # accelerate launch --cpu
    assert needs_cpu_flag() is True
