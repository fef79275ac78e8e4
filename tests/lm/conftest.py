"""Fixtures for the causal-LM tests: tiny random decoders of several families, token batches."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

FAMILIES = ("llama", "qwen2", "mistral", "gpt2", "phi")


@pytest.fixture
def tiny_lm() -> Callable[..., nn.Module]:
    """``tiny_lm(family="llama", seed=0)``: a 2-layer, 32-wide random decoder (vocabulary 259)."""
    from unipt.lm.backbone import tiny_decoder

    def make(family: str = "llama", seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return tiny_decoder(family)

    return make


@pytest.fixture
def tokens() -> dict[str, torch.Tensor]:
    """Two sequences of 10 tokens; the second is left-padded by 3."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 256, (2, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    ids[1, :3] = 256  # the pad id of the tiny decoders
    return {"input_ids": ids, "attention_mask": mask}


def randomise_up_projection(model: nn.Module, seed: int = 0) -> None:
    """Give the zero-initialised up-projection random weights, so the side network changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.side.up_proj.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def backbone_logits(backbone: nn.Module, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    """The backbone's own logits with the positions generation uses (left padding counts from 0)."""
    positions = (tokens["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    return backbone(**tokens, position_ids=positions).logits


def training_losses(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor, steps: int, lr: float) -> list[float]:
    """Train ``model``'s trainable parameters with AdamW for ``steps`` steps on one batch; the losses."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(ids, labels=labels, logits_to_keep=1).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses
