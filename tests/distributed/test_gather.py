"""CLIP4Clip's cross-rank gather: two gloo processes x 4 pairs train the one-process objective of 8 pairs
(same loss, same gradients after DDP's averaging), positives that share a video across ranks included."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("gather_run.py")
_spec = importlib.util.spec_from_file_location("gather_run_for_test", SCRIPT)
worker = sys.modules.setdefault("gather_run_for_test", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(worker)


def test_two_ranks_with_gathered_embeddings_equal_one_process(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(SCRIPT), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    two = load_file(str(tmp_path / "grads.safetensors"))

    loss, grads = worker.reference()
    torch.testing.assert_close(two["loss"], loss.reshape(1), atol=1e-6, rtol=0)
    assert set(two) - {"loss"} == set(grads)
    for name, grad in grads.items():
        assert grad.abs().max() > 1e-4, name  # the loss really depends on these weights
        torch.testing.assert_close(two[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_without_gather_the_two_rank_loss_would_differ() -> None:
    """The gather matters: the mean of the two half-batch losses is not the global-batch loss."""
    from unipt.tasks.video_retrieval import VideoTextRetrieval

    towers, data = worker.Towers(), worker.inputs()
    task = VideoTextRetrieval(logit_scale=10.0).train()
    with torch.no_grad():
        whole = task(towers(data["frames"], data["frame_mask"], data["text"]), {"video_index": data["video_index"]})
        halves = [task(towers(data["frames"][s], data["frame_mask"][s], data["text"][s]),
                       {"video_index": data["video_index"][s]})["loss"] for s in (slice(0, 4), slice(4, 8))]
    assert abs(float(whole["loss"]) - float(sum(halves) / 2)) > 1e-3
