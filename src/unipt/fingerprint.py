"""Identify a backbone, so saved side networks and caches are never applied to the wrong one."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def structure_hash(model: nn.Module) -> str:
    """Hash of the class name and every parameter/buffer name, shape and dtype."""
    digest = hashlib.sha256(type(model).__name__.encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
    return digest.hexdigest()[:16]


@torch.no_grad()
def weights_hash(model: nn.Module) -> str:
    """Hash of every parameter and buffer value (detects other weights of the same architecture)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def fingerprint(model: nn.Module) -> dict[str, str]:
    return {"class": type(model).__name__, "structure": structure_hash(model), "weights": weights_hash(model)}
