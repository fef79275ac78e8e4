"""AdamW over the trainable parameters with a warm-up + cosine / linear / step / constant schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from unipt.train.config import OptimConfig


def build_optimizer(system: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    """AdamW; biases and norm weights get no weight decay; the head may use its own ``head_lr``."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in system.named_parameters():
        if not param.requires_grad:
            continue
        is_head = name.startswith(("task.", "fusions."))
        no_decay = param.dim() < 2
        groups.setdefault((is_head, no_decay), []).append(param)
    if not groups:
        raise ValueError("nothing to train: no parameter requires grad (check the towers' methods)")
    param_groups = []
    for (is_head, no_decay), params in groups.items():
        lr = config.head_lr if is_head and config.head_lr is not None else config.lr
        param_groups.append({"params": params, "lr": lr, "weight_decay": 0.0 if no_decay else config.weight_decay})
    return torch.optim.AdamW(param_groups, betas=tuple(config.betas), eps=config.eps)


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, steps_per_epoch: int,
                    epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step learning-rate multiplier: linear warm-up, then the chosen decay."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(config.warmup_ratio * total)
    milestones = [e * steps_per_epoch for e in config.step_epochs]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if config.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if config.schedule == "linear":
            return max(0.0, 1 - progress)
        if config.schedule == "step":
            return config.step_gamma ** sum(step >= m for m in milestones)
        return 1.0

    if config.schedule not in ("cosine", "linear", "step", "constant"):
        raise ValueError(f"unknown schedule {config.schedule!r}; use cosine, linear, step or constant")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def restore_optimizer(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
                      state: dict) -> None:
    """Load a checkpoint's optimiser and scheduler state (``state["optimizer"]`` / ``["scheduler"]``), then
    recompute the current learning rate from *this* run's schedule: a resumed run may be longer (more
    epochs), and the saved rate belongs to the old one."""
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    for group, base, fn in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
