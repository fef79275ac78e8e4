"""Fixtures for the baseline tests (the builders live in ``helpers``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from .helpers import make_bert


@pytest.fixture
def bert() -> Callable[[], nn.Module]:
    return make_bert


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 100, (4, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[3, 4:] = 0
    return {"input_ids": ids * mask, "attention_mask": mask}


@pytest.fixture
def images() -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))}
