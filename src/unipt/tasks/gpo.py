"""Generalised Pooling Operator (GPO) of VSE∞ (Chen et al., CVPR 2021).

GPO pools a variable-length set of features into one vector with a learned, length-dependent
weighting of the *sorted* features: for every channel the values are sorted in descending order
and the k-th largest value gets weight w_k. The weights come only from the number of real tokens:
sinusoidal encodings of positions 0..n-1 -> bidirectional GRU -> Linear -> softmax(score / 0.1).
So GPO can express max pooling (all weight on k=0), mean pooling (uniform) and anything between,
and it never looks at token order or padding.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """``[length, dim]`` Transformer sinusoidal encodings (sin on even, cos on odd channels)."""
    if dim % 2:
        raise ValueError(f"positional-encoding width must be even, got {dim}")
    pos = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class GPO(nn.Module):
    """GPO pooling: ``[B, L, D]`` features + ``[B, L]`` mask -> ``[B, D]``.

    With ``d_pe = d_hidden = 32`` (VSE∞'s setting) it has exactly 12,704 parameters:
    a 1-layer bidirectional GRU(32 -> 32) (2 x 6,336) and a bias-free Linear(32 -> 1) (32).

    Args:
        d_pe: width of the positional encodings fed to the GRU.
        d_hidden: GRU hidden size (per direction).
        temperature: softmax temperature over the position scores (0.1 in VSE∞).
    """

    def __init__(self, d_pe: int = 32, d_hidden: int = 32, temperature: float = 0.1) -> None:
        super().__init__()
        self.d_pe = d_pe
        self.temperature = temperature
        self.gru = nn.GRU(d_pe, d_hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.score = nn.Linear(d_hidden, 1, bias=False)

    def pool_weights(self, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
        """``[B, max_len, 1]`` weights over sorted positions; zero beyond each sample's length.

        Args:
            lengths: ``[B]`` number of real tokens per sample (all >= 1).
            max_len: padded length of the output.
        """
        batch = lengths.shape[0]
        device = self.score.weight.device
        valid = torch.arange(max_len, device=device).unsqueeze(0) < lengths.to(device).unsqueeze(1)  # [B, L]
        pe = sinusoidal_positions(max_len, self.d_pe, device).expand(batch, -1, -1)
        pe = pe.masked_fill(~valid.unsqueeze(-1), 0.0)
        # Packing makes the backward GRU start at each sample's last real position, so the
        # weights depend on the length only and never on how much padding follows.
        packed = pack_padded_sequence(pe, lengths.cpu(), batch_first=True, enforce_sorted=False)
        hidden, _ = self.gru(packed)
        hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=max_len)
        forward_h, backward_h = hidden.chunk(2, dim=-1)
        scores = self.score((forward_h + backward_h) / 2)  # [B, L, 1]
        scores = scores.masked_fill(~valid.unsqueeze(-1), float("-inf"))
        return torch.softmax(scores / self.temperature, dim=1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pool ``features`` ``[B, L, D]`` over the tokens where ``mask`` ``[B, L]`` is true.

        The mask need not be a prefix: real tokens are found by value after sorting, so e.g.
        randomly dropped grid cells can simply be masked out. Returns ``[B, D]``.
        """
        batch, length, _ = features.shape
        if mask is None:
            mask = torch.ones(batch, length, dtype=torch.bool, device=features.device)
        mask = mask.bool()
        lengths = mask.sum(1)
        if bool((lengths == 0).any()):
            raise ValueError("GPO got a sample with no real tokens")
        # Padding is pushed below every real value so that, after a descending sort, the first
        # `length` slots hold the real values; the padded slots are then zeroed (weight is 0 there
        # anyway, but -inf * 0 would be NaN).
        filled = features.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        ordered = filled.sort(dim=1, descending=True).values
        max_len = int(lengths.max())
        ordered = ordered[:, :max_len]
        prefix = torch.arange(max_len, device=features.device).unsqueeze(0) < lengths.unsqueeze(1)
        ordered = ordered.masked_fill(~prefix.unsqueeze(-1), 0.0)
        weights = self.pool_weights(lengths, max_len).to(ordered.dtype)
        return (ordered * weights).sum(1)
