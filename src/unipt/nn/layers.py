"""Small building blocks of the side network, each with named sub-layers (``linear``, ``norm``, ``fc1``...).

All of them act on token tensors ``[B, L, D]``. The CNN variant's 1x1 convolutions are the same maps as
``nn.Linear`` on flattened grid cells (identical parameter counts), and its BatchNorm is
:class:`TokenBatchNorm` (statistics over every cell of every sample).

Forms (the strings a :class:`~unipt.config.UniPTConfig` uses):

* down-projection: ``linear_norm`` (Linear -> Norm) or ``relu_linear`` (ReLU -> Linear);
* fusion ``P``: ``linear_norm``, ``mlp_norm`` (Linear -> ReLU -> Linear -> Norm) or ``none``;
* up-projection ``U``: ``relu_linear``, ``linear`` or ``relu_linear_norm`` (its norm is a LayerNorm).
"""

from __future__ import annotations

import torch
from torch import nn

DOWN_FORMS = ("linear_norm", "relu_linear")
FUSION_FORMS = ("linear_norm", "mlp_norm", "none")
UP_FORMS = ("relu_linear", "linear", "relu_linear_norm")
NORMS = ("layer", "batch")


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the last dim of ``[B, L, D]`` tokens (== BatchNorm2d on the grid it came from)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


def make_norm(kind: str, width: int) -> nn.Module:
    """``layer``: LayerNorm; ``batch``: :class:`TokenBatchNorm`."""
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind == "batch":
        return TokenBatchNorm(width)
    raise ValueError(f"Unknown norm {kind!r}; use one of {list(NORMS)}")


class Projection(nn.Module):
    """``[B, L, in_width] -> [B, L, out_width]``: optional ReLU, then ``linear``, then optional ``norm``.

    Args:
        in_width / out_width: feature widths.
        relu: apply ReLU to the input first.
        norm: ``layer``, ``batch`` or ``None`` (no ``norm`` sub-layer).
    """

    def __init__(self, in_width: int, out_width: int, *, relu: bool = False, norm: str | None = None):
        super().__init__()
        self.relu = relu
        self.linear = nn.Linear(in_width, out_width)
        self.norm = make_norm(norm, out_width) if norm is not None else None

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Everything before the norm: ``linear(relu(x))`` (the fused kernel keeps this and recomputes the norm)."""
        return self.linear(x.relu() if self.relu else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(x)
        return self.norm(y) if self.norm is not None else y


def down_projection(form: str, in_width: int, width: int, norm: str = "layer") -> Projection:
    """Per-layer projection into the side width: ``[B, L, in_width] -> [B, L, width]``."""
    if form == "linear_norm":
        return Projection(in_width, width, norm=norm)
    if form == "relu_linear":
        return Projection(in_width, width, relu=True)
    raise ValueError(f"Unknown down_proj {form!r}; use one of {list(DOWN_FORMS)}")


def up_projection(form: str, width: int, out_width: int) -> Projection:
    """U: ``[B, L, d] -> [B, L, out_width]``."""
    if form == "relu_linear":
        return Projection(width, out_width, relu=True)
    if form == "linear":
        return Projection(width, out_width)
    if form == "relu_linear_norm":
        return Projection(width, out_width, relu=True, norm="layer")
    raise ValueError(f"Unknown up_proj {form!r}; use one of {list(UP_FORMS)}")


class MLPFusion(nn.Module):
    """P = ``norm(fc2(relu(fc1(x))))`` with a hidden width of ``2 d``: ``[B, L, d] -> [B, L, d]``."""

    def __init__(self, width: int, norm: str = "layer"):
        super().__init__()
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)
        self.norm = make_norm(norm, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc2(self.fc1(x).relu()))


def fusion(form: str, width: int, norm: str = "layer") -> nn.Module:
    """P in ``F_c = G + P(M)``: ``[B, L, d] -> [B, L, d]``."""
    if form == "linear_norm":
        return Projection(width, width, norm=norm)
    if form == "mlp_norm":
        return MLPFusion(width, norm)
    if form == "none":
        return nn.Identity()
    raise ValueError(f"Unknown fusion {form!r}; use one of {list(FUSION_FORMS)}")


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
