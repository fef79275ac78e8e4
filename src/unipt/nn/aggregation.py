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
        """Mix the layers.

        Args:
            guide_pooled: ``[B, d]`` pooled guide ``g``.
            layer_pooled: ``[n, B, d]`` pooled down-projected layers ``t_i``.
            interacted: ``[n, B, L, d]`` interacted layers ``F'_i``.

        Returns:
            ``M`` ``[B, L, d]`` and the layer weights ``[B, n]``.
        """
        n = layer_pooled.shape[0]
        if self.mode == "uniform":
            alpha = layer_pooled.new_full((n, layer_pooled.shape[1]), 1.0 / n)
        else:
            alpha = self.gate(guide_pooled.unsqueeze(0) * layer_pooled).squeeze(-1).softmax(dim=0)
        mixed = torch.einsum("nb,nbld->bld", alpha, interacted)
        return mixed, alpha.transpose(0, 1)
