"""Counting parameters: the one counter every report, summary and method uses."""

from __future__ import annotations

from typing import NamedTuple

from torch import nn


class ParameterCount(NamedTuple):
    """Scalars of a module: ``trainable`` (``requires_grad``) and ``total``; shared tensors count once."""

    trainable: int
    total: int


def count_parameters(module: nn.Module) -> ParameterCount:
    """``(trainable, total)`` scalar counts of ``module`` (``nn.Module.parameters`` de-duplicates shared tensors)."""
    trainable = total = 0
    for param in module.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return ParameterCount(trainable, total)
