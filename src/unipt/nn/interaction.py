"""Parallel interaction: the guide re-weights one tapped layer's tokens, with no learned parameters.

For guide ``G`` ``[B, Lq, d]`` and a down-projected layer ``F`` ``[B, Lk, d]``::

    S = G F^T                       (no 1/sqrt(d), no softmax)
    S[:, :, j] *= m_j               (padded keys score 0)
    S[:, q, j] = 0 for j > q        (causal only: a query never reads a later key)
    A = L1row(relu(S))              (each row sums to 1, or 0 if every score is <= 0)
    F' = A F + skip                 (skip = F itself, the layer's class token, or nothing)
"""

from __future__ import annotations

import torch
from torch import nn


class ParallelInteraction(nn.Module):
    """Parameter-free guided attention from a guide to one layer (see module docstring).

    Args:
        eps: added to (``eps_mode="add"``) or a floor for (``"clamp"``) each row's L1 norm.
        skip: ``identity`` (requires ``Lq == Lk``), ``class_token`` or ``none``.
        enabled: ``False`` is the "no interaction" ablation: ``F' = F``.
    """

    def __init__(self, eps: float = 1e-6, eps_mode: str = "add", skip: str = "identity", enabled: bool = True):
        super().__init__()
        if eps_mode not in ("add", "clamp"):
            raise ValueError(f"Unknown eps_mode {eps_mode!r}; use 'add' or 'clamp'")
        if skip not in ("identity", "class_token", "none"):
            raise ValueError(f"Unknown skip {skip!r}; use 'identity', 'class_token' or 'none'")
        self.eps, self.eps_mode, self.skip, self.enabled = eps, eps_mode, skip, enabled

    def weights(
        self, guide: torch.Tensor, feats: torch.Tensor, key_mask: torch.Tensor | None, causal: bool = False
    ) -> torch.Tensor:
        """Attention ``A`` ``[B, Lq, Lk]`` (without the skip term).

        With ``causal`` the ``Lq`` queries are the last ``Lq`` of the ``Lk`` positions (``Lq == Lk`` in
        a full pass, fewer when generation appends tokens to cached keys): query ``q`` sits at position
        ``Lk - Lq + q`` and reads keys ``j <= Lk - Lq + q`` only.
        """
        scores = guide @ feats.transpose(1, 2)
        if key_mask is not None:
            scores = scores * key_mask.to(scores.dtype).unsqueeze(1)
        if causal:
            scores = scores * causal_mask(guide.shape[1], feats.shape[1], scores.device).to(scores.dtype)
        scores = scores.relu()
        norm = scores.sum(-1, keepdim=True)
        norm = norm + self.eps if self.eps_mode == "add" else norm.clamp(min=self.eps)
        return scores / norm

    def forward(
        self,
        guide: torch.Tensor,
        feats: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        class_tokens: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        """Interacted features ``[B, Lq, d]``.

        Args:
            guide: ``[B, Lq, d]`` queries. feats: ``[B, Lk, d]`` keys = values.
            key_mask: ``[B, Lk]`` 1 for real tokens. class_tokens: ``[B, d]`` for ``class_token`` skip.
            causal: query ``q`` reads only keys at or before its position (see :meth:`weights`); the
                identity skip then adds the query's own token, the last ``Lq`` rows of ``feats``.
        """
        if not self.enabled:
            return feats[:, feats.shape[1] - guide.shape[1]:] if causal else feats
        out = self.weights(guide, feats, key_mask, causal) @ feats
        if self.skip == "identity" and causal:
            out = out + feats[:, feats.shape[1] - guide.shape[1]:]
        elif self.skip == "identity":
            if guide.shape[1] != feats.shape[1]:
                raise ValueError(
                    f"identity skip needs as many guide tokens as layer tokens, got {guide.shape[1]} vs "
                    f"{feats.shape[1]}; use skip='class_token' for a single-token guide"
                )
            out = out + feats
        elif self.skip == "class_token":
            if class_tokens is None:
                raise ValueError("skip='class_token' needs class_tokens [B, d]")
            out = out + class_tokens.unsqueeze(1)
        return out


def causal_mask(num_queries: int, num_keys: int, device: torch.device | None = None) -> torch.Tensor:
    """``[Lq, Lk]`` bool, True where key ``j`` is at or before query ``q`` (queries = the last ``Lq`` positions)."""
    if num_queries > num_keys:
        raise ValueError(f"causal interaction needs at least as many keys as queries, got {num_queries} > {num_keys}")
    q = torch.arange(num_keys - num_queries, num_keys, device=device)
    return torch.arange(num_keys, device=device)[None, :] <= q[:, None]
