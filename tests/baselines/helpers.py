"""Helpers for the baseline tests: a tiny random BERT (D=64, 2 layers), a tiny CNN, a short training loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HIDDEN, LAYERS, INTERMEDIATE = 64, 2, 128


def make_bert(seed: int = 0) -> nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=INTERMEDIATE,
        vocab_size=100,
        max_position_embeddings=32,
    )
    return BertModel(config, add_pooling_layer=False)


class TinyCNN(nn.Module):
    """Three stages: 8ch @ 16x16, 16ch @ 8x8, 32ch @ 4x4 (for a 16x16 input)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stage1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.stage2(self.stage1(self.stem(pixel_values)))


def train_a_few_steps(
    method: nn.Module, inputs: dict[str, torch.Tensor], steps: int = 8, lr: float = 1e-2
) -> list[float]:
    """Fit a linear head on the pooled output to fixed labels; returns the loss per step."""
    torch.manual_seed(0)
    width = method(**inputs).last_hidden_state.shape[-1]
    head = nn.Linear(width, 3)
    params = [p for p in method.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr)
    labels = torch.arange(next(iter(inputs.values())).shape[0]) % 3
    losses = []
    method.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(head(method(**inputs).pooled), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
