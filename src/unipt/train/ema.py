"""Exponential moving average of the trained weights (MDETR evaluates its EMA, decay 0.9998).

After every optimiser step ``ema = decay * ema + (1 - decay) * w`` for each trainable tensor (and the
floating buffers of trainable modules, e.g. BatchNorm statistics); frozen backbone tensors never change,
so averaging them (as the released code does over the whole state dict) would be a no-op. Evaluation
swaps the averages in and the live weights back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """EMA over ``keys()`` of a module's state dict.

    Args:
        module: the trained system (its current values start the average).
        keys: which state-dict entries to average (e.g. ``system.trainable_state_dict()``'s keys).
        decay: the EMA decay (0.9998 in MDETR).
    """

    def __init__(self, module: nn.Module, keys: list[str], decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        state = module.state_dict()
        self.shadow = {k: state[k].detach().clone() for k in keys if state[k].is_floating_point()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        state = module.state_dict()
        for key, average in self.shadow.items():
            average.lerp_(state[key].detach().to(average.dtype), 1.0 - self.decay)

    @contextmanager
    def swapped(self, module: nn.Module) -> Iterator[None]:
        """Inside the block ``module`` holds the averaged weights; the live ones come back after."""
        state = module.state_dict()
        live = {k: state[k].detach().clone() for k in self.shadow}
        copy_into(state, self.shadow)
        try:
            yield
        finally:
            copy_into(state, live)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.shadow.items()}

    def load_state_dict(self, saved: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(saved))
        if missing:
            raise ValueError(f"the checkpoint's EMA lacks {missing[:5]}; it was saved by another run config")
        for key, value in self.shadow.items():
            value.copy_(saved[key])


@torch.no_grad()
def copy_into(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor]) -> None:
    """Copy ``source`` tensors into the same-named tensors of a state dict (shared storage, in place)."""
    for key, value in source.items():
        target[key].copy_(value)
