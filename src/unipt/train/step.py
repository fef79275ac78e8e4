"""The training step: the one function the trainer, the benchmarks and the demo all train with."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from unipt.train.nonfinite import gradient_norm, step_scheduler


@dataclass
class StepResult:
    """``loss``: detached, before ``loss_scale``. ``stepped``: whether the optimiser stepped (``None``: gradients
    only accumulated). ``grad_norm``: the gradients' total norm when it was needed (clipping or ``may_step``)."""

    loss: torch.Tensor
    stepped: bool | None = None
    grad_norm: float | None = None


def training_step(
    compute_loss: Callable[[], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    backward: Callable[[torch.Tensor], Any] | None = None,
    loss_scale: float = 1.0,
    forward_context: AbstractContextManager[Any] | None = None,
    step: bool = True,
    clip: Callable[[], Any] | None = None,
    may_step: Callable[[torch.Tensor, float], bool] | None = None,
    after_step: Callable[[], Any] | None = None,
    scheduler: Any | None = None,
) -> StepResult:
    """Forward + loss, backward, and (when ``step``) one optimiser step; gradients are zeroed after it.

    Args:
        compute_loss: runs the forward pass and returns the scalar loss.
        optimizer: steps the trainable parameters.
        backward: how to back-propagate (default ``loss.backward()``; the trainer passes Accelerate's).
        loss_scale: the loss is multiplied by this before backward (gradient accumulation, loss ramps).
        forward_context: entered around the forward pass only (autocast, a saved-activation meter).
        step: ``False`` accumulates the gradients (a micro-batch of a larger step) and returns.
        clip: clips the gradients and returns their total norm (``None``: no clipping).
        may_step: ``(loss, gradient norm) -> bool``: ``False`` skips the optimiser step (a non-finite step).
        after_step: called after the optimiser stepped (an average of the weights).
        scheduler: stepped after the optimiser (also after a skipped step: it keeps its place in the schedule).
    """
    with forward_context if forward_context is not None else nullcontext():
        loss = compute_loss()
    scaled = loss * loss_scale
    if backward is None:
        scaled.backward()
    else:
        backward(scaled)
    if not step:
        return StepResult(loss.detach())
    norm = None
    if clip is not None:
        norm = float(clip())
    elif may_step is not None:
        norm = gradient_norm([p for group in optimizer.param_groups for p in group["params"]])
    stepped = may_step is None or may_step(loss.detach(), norm)
    if stepped:
        optimizer.step()
        if after_step is not None:
            after_step()
    if scheduler is not None:
        step_scheduler(scheduler, stepped)
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss.detach(), stepped, norm)
