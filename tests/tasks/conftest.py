"""Shared helpers for the task tests: tiny random feature streams and a short optimisation loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import pytest
import torch

from unipt.outputs import AdaptedOutput
from unipt.tasks import Task


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seed every test; run single-threaded, which is faster for these tiny tensors on a busy
    machine (intra-op threads only add overhead here). The thread count is restored afterwards."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trainable(out: AdaptedOutput) -> tuple[AdaptedOutput, list[torch.Tensor]]:
    """Copy of ``out`` whose float tensors (features, pooled, aux) are leaves with gradients."""
    values, leaves = {}, []
    for f in fields(out):
        v = getattr(out, f.name)
        if isinstance(v, torch.Tensor) and v.is_floating_point() and f.name != "attention_mask":
            v = v.detach().clone().requires_grad_(True)
            leaves.append(v)
        values[f.name] = v
    return AdaptedOutput(**values), leaves


def run_steps(task: Task, features: dict[str, AdaptedOutput], batch: dict, steps: int = 30, lr: float = 0.02):
    """Train the head *and* the input features with Adam; returns the list of losses.

    The features are trained too so that parameter-free heads (video retrieval) can be checked
    the same way, and so that the head's gradient reaches its inputs.
    """
    trainable, leaves = {}, []
    for name, out in features.items():
        trainable[name], new = _trainable(out)
        leaves += new
    optimiser = torch.optim.Adam([*task.parameters(), *leaves], lr=lr)
    losses = []
    task.train()
    for _ in range(steps):
        loss = task(trainable, batch)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.fixture
def loss_falls() -> Callable[..., list[float]]:
    """``loss_falls(task, features, batch)`` asserts the loss drops by >= 30% in a few steps."""

    def check(task: Task, features: dict[str, AdaptedOutput], batch: dict, **kwargs) -> list[float]:
        losses = run_steps(task, features, batch, **kwargs)
        assert all(torch.isfinite(torch.tensor(losses))), losses
        assert losses[-1] < 0.7 * losses[0], losses
        return losses

    return check
