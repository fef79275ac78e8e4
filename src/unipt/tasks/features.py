"""Reading one vector per sample, or a token mask, out of an :class:`AdaptedOutput`."""

from __future__ import annotations

import torch

from unipt.outputs import AdaptedOutput, masked_mean

POOL_MODES: tuple[str, ...] = ("auto", "pooled", "first", "mean")


def check_pool_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`POOL_MODES`, else raise a ``ValueError`` naming them."""
    if mode not in POOL_MODES:
        raise ValueError(f"unknown pooling mode {mode!r}; expected one of {POOL_MODES}")
    return mode


def token_mask(out: AdaptedOutput) -> torch.Tensor:
    """``[B, L]`` bool mask of real tokens (all true when the output has no mask)."""
    x = out.last_hidden_state
    if out.attention_mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return out.attention_mask.to(device=x.device).bool()


def pooled_vector(out: AdaptedOutput, mode: str = "auto") -> torch.Tensor:
    """One ``[B, D]`` vector per sample.

    Args:
        out: adapted features; ``last_hidden_state`` is ``[B, L, D]``.
        mode: ``"pooled"`` uses ``out.pooled`` (error if absent); ``"first"`` takes token 0
            (the [CLS] position of BERT-style joint encoders); ``"mean"`` is the masked mean over
            tokens; ``"auto"`` is ``"pooled"`` when available, else ``"mean"``.
    """
    if check_pool_mode(mode) == "auto":
        mode = "pooled" if out.pooled is not None else "mean"
    if mode == "pooled":
        if out.pooled is None:
            raise ValueError("pooling mode 'pooled' needs AdaptedOutput.pooled, which is None")
        return out.pooled
    if mode == "first":
        return out.last_hidden_state[:, 0]
    return masked_mean(out.last_hidden_state, out.attention_mask)
