"""Output containers shared by UniPT, the baselines and the task heads.

Every adaptation method (UniPT, LoRA, LST, full fine-tuning, a frozen probe) returns a
:class:`AdaptedOutput`, so task heads never need to know which method produced the features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AdaptedOutput:
    """Features of an adapted backbone, ready for a task head.

    Attributes:
        last_hidden_state: ``[B, L, D]`` token (or flattened grid-cell) features.
        attention_mask: ``[B, L]`` with 1 for real tokens, or ``None`` when every token is real.
        pooled: ``[B, D]`` one vector per sample (masked mean, class token or projected output).
        layer_weights: ``[B, n]`` UniPT's softmax confidence over the tapped layers (``None`` for
            methods without one).
        aux_hidden_states: optional ``[k, B, L, D]`` extra per-layer outputs (MDETR-style aux losses).
        head_inputs: frozen backbone outputs a task head reads as they are (MDETR's encoded text tokens
            for its contrastive-alignment head), from the backbone output's ``head_inputs``; else ``None``.
    """

    last_hidden_state: torch.Tensor
    attention_mask: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    layer_weights: torch.Tensor | None = None
    aux_hidden_states: torch.Tensor | None = None
    head_inputs: dict[str, torch.Tensor] | None = None


def as_tokens(x: torch.Tensor) -> torch.Tensor:
    """Lay a feature tensor out as tokens: ``[B, C, H, W]`` map -> ``[B, H*W, C]``; ``[B, L, D]`` stays;
    ``[B, D]`` -> ``[B, 1, D]``."""
    if x.dim() == 4:
        return x.flatten(2).transpose(1, 2)
    if x.dim() == 3:
        return x
    if x.dim() == 2:
        return x.unsqueeze(1)
    raise ValueError(f"cannot lay out a {x.dim()}-d tensor of shape {tuple(x.shape)} as tokens")


def token_output(features: torch.Tensor, attention_mask: torch.Tensor | None) -> AdaptedOutput:
    """An :class:`AdaptedOutput` from final features: tokens, mask, masked-mean pooled ``[B, D]``.

    The mask only applies to sequence outputs; grid tokens from a feature map are all real.
    """
    tokens = as_tokens(features)
    mask = attention_mask if features.dim() == 3 else None
    return AdaptedOutput(last_hidden_state=tokens, attention_mask=mask, pooled=masked_mean(tokens, mask))


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int = 1) -> torch.Tensor:
    """Mean of ``x`` ``[B, L, D]`` over ``dim`` counting only positions where ``mask`` ``[B, L]`` is 1."""
    if mask is None:
        return x.mean(dim)
    m = mask.to(x.dtype)
    count = m.sum(-1, keepdim=True).clamp(min=1.0)
    if dim == 1 and x.dim() == 3:  # [B, 1, L] @ [B, L, D]: one pass, no broadcast temporary
        return (m.unsqueeze(1) @ x).squeeze(1) / count
    m = m.unsqueeze(-1)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1.0)
