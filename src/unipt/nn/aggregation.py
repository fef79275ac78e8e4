"""Confidence aggregation: one shared gate scores every layer per sample; softmax over layers mixes them."""

from __future__ import annotations

import torch
from torch import nn


class ConfidenceAggregation(nn.Module):
    """``c_i = w^T (g * t_i) + b`` with ONE ``Linear(d, 1)`` shared by all layers; ``a = softmax_i(c)``.

    Args:
        width: side width ``d``.
        mode: ``confidence`` (the paper) or ``uniform`` (ablation: ``a_i = 1/n``; the gate is unused).
    """

    def __init__(self, width: int, mode: str = "confidence"):
        super().__init__()
        if mode not in ("confidence", "uniform"):
            raise ValueError(f"Unknown aggregation {mode!r}; use 'confidence' or 'uniform'")
        self.mode = mode
        self.gate = nn.Linear(width, 1)

    def forward(
        self, guide_pooled: torch.Tensor, layer_pooled: torch.Tensor, interacted: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the layers, with one weight per layer and sample, or per layer, sample and position.

        Args:
            guide_pooled: ``[B, d]`` pooled guide ``g``, or ``[B, L, d]`` one summary per position (causal
                models: running means over positions ``<= t``).
            layer_pooled: ``[n, B, d]`` pooled down-projected layers ``t_i``, or ``[n, B, L, d]``.
            interacted: ``[n, B, L, d]`` interacted layers ``F'_i``.

        Returns:
            ``M`` ``[B, L, d]`` and the layer weights ``[B, n]`` (``[B, L, n]`` per position).
        """
        per_position = guide_pooled.dim() == 3
        if layer_pooled.dim() != guide_pooled.dim() + 1:
            raise ValueError(
                f"pooled guide {tuple(guide_pooled.shape)} and pooled layers {tuple(layer_pooled.shape)} do not "
                "match: use [B, d] with [n, B, d], or [B, L, d] with [n, B, L, d] (per position)"
            )
        if self.mode == "uniform":
            alpha = layer_pooled.new_full(layer_pooled.shape[:-1], 1.0 / layer_pooled.shape[0])
        else:
            alpha = self.gate(guide_pooled.unsqueeze(0) * layer_pooled).squeeze(-1).softmax(dim=0)
        if per_position:
            return torch.einsum("nbl,nbld->bld", alpha, interacted), alpha.permute(1, 2, 0)
        mixed = torch.einsum("nb,nbld->bld", alpha, interacted)
        return mixed, alpha.transpose(0, 1)
