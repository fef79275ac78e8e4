"""Small building blocks of the side network: down-projections, fusion P, up-projection U, init.

All of them act on token tensors ``[B, L, D]``. The CNN variant's 1x1 convolutions are the same
maps as ``nn.Linear`` on flattened grid cells (identical parameter counts), and its BatchNorm is
:class:`TokenBatchNorm` (statistics over every cell of every sample).
"""

from __future__ import annotations

import torch
from torch import nn


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the last dim of ``[B, L, D]`` tokens (== BatchNorm2d on the grid it came from)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


def make_norm(kind: str, width: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind == "batch":
        return TokenBatchNorm(width)
    raise ValueError(f"Unknown norm {kind!r}; use 'layer' or 'batch'")


def make_down_proj(form: str, in_width: int, width: int, norm: str) -> nn.Module:
    """Per-layer projection into the side width: ``[B, L, in_width] -> [B, L, width]``."""
    if form == "linear_norm":
        return nn.Sequential(nn.Linear(in_width, width), make_norm(norm, width))
    if form == "relu_linear":
        return nn.Sequential(nn.ReLU(), nn.Linear(in_width, width))
    raise ValueError(f"Unknown down_proj {form!r}; use 'linear_norm' or 'relu_linear'")


def make_fusion(form: str, width: int, norm: str) -> nn.Module:
    """P in ``F_c = G + P(M)``: ``[B, L, d] -> [B, L, d]``."""
    if form == "linear_norm":
        return nn.Sequential(nn.Linear(width, width), make_norm(norm, width))
    if form == "mlp_norm":
        return nn.Sequential(
            nn.Linear(width, 2 * width), nn.ReLU(), nn.Linear(2 * width, width), make_norm(norm, width)
        )
    if form == "none":
        return nn.Identity()
    raise ValueError(f"Unknown fusion {form!r}; use 'linear_norm', 'mlp_norm' or 'none'")


def make_up_proj(form: str, width: int, out_width: int) -> nn.Module:
    """U: ``[B, L, d] -> [B, L, out_width]``."""
    if form == "relu_linear":
        return nn.Sequential(nn.ReLU(), nn.Linear(width, out_width))
    if form == "linear":
        return nn.Linear(width, out_width)
    if form == "relu_linear_norm":
        return nn.Sequential(nn.ReLU(), nn.Linear(width, out_width), nn.LayerNorm(out_width))
    raise ValueError(f"Unknown up_proj {form!r}; use 'relu_linear', 'linear' or 'relu_linear_norm'")


@torch.no_grad()
def init_weights(module: nn.Module, scheme: str) -> None:
    """Re-initialise ``module`` in place: ``default`` keeps PyTorch's, ``bert`` or ``xavier``."""
    if scheme == "default":
        return
    if scheme not in ("bert", "xavier"):
        raise ValueError(f"Unknown init {scheme!r}; use 'default', 'bert' or 'xavier'")
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)):
            if scheme == "bert":
                sub.weight.normal_(0.0, 0.02)
                if sub.bias is not None:
                    sub.bias.zero_()
            else:  # MDETR: xavier on every matrix, biases keep PyTorch's default
                nn.init.xavier_uniform_(sub.weight)
        elif isinstance(sub, (nn.LayerNorm, nn.BatchNorm1d)) and scheme == "bert":
            sub.weight.fill_(1.0)
            sub.bias.zero_()


@torch.no_grad()
def zero_last_linear(module: nn.Module) -> None:
    """Zero the weight and bias of the last ``nn.Linear`` inside ``module`` (so it outputs 0 at start)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(module).__name__} has no Linear to zero-initialise")
    linears[-1].weight.zero_()
    if linears[-1].bias is not None:
        linears[-1].bias.zero_()
