"""Picklable test workloads that avoid importing transformers (keeps spawned test processes quick)."""

from __future__ import annotations

import functools

import torch
from torch import nn

from unipt.bench.workload import Workload, random_text_batch


class TokenMLP(nn.Module):
    """Embedding + two Linear/ReLU layers: ``forward(input_ids, attention_mask) -> [B, L, D]``."""

    def __init__(self, width: int = 32, vocab: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.layers = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.layers(self.embed(input_ids))


def token_mlp_workload(width: int = 32) -> Workload:
    return Workload(
        name="token-mlp",
        backbone_factory=functools.partial(TokenMLP, width=width),
        batch_factory=functools.partial(random_text_batch, seq_len=8),
        feature_dim=width,
        batch_size=4,
    )
