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


def architecture_hash(model: nn.Module) -> str:
    """Hash of the class name and every parameter/buffer name and shape, not their dtypes: the same
    backbone in fp32, fp16 or bf16 has one architecture."""
    digest = hashlib.sha256(type(model).__name__.encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
    return digest.hexdigest()[:16]


def floating_dtype(model: nn.Module) -> str:
    """``"float32"`` / ``"bfloat16"``...: the dtype of the first floating-point tensor ("none" if none)."""
    dtype = next((t.dtype for t in model.state_dict().values() if t.is_floating_point()), None)
    return str(dtype).removeprefix("torch.") if dtype is not None else "none"


def architecture_fingerprint(model: nn.Module) -> dict[str, str]:
    """What a saved side network records beside :func:`fingerprint` to accept a dtype change."""
    return {"architecture": architecture_hash(model), "dtype": floating_dtype(model)}


def same_architecture(saved: dict[str, str], model: nn.Module) -> bool:
    """Whether a saved fingerprint describes ``model``'s architecture (any dtype). Saves that predate the
    ``architecture`` field are compared by ``structure``, which includes the dtype."""
    if saved.get("architecture"):
        return saved["architecture"] == architecture_hash(model)
    return not saved.get("structure") or saved["structure"] == structure_hash(model)


def same_dtype(saved: dict[str, str], model: nn.Module) -> bool:
    return saved.get("dtype", floating_dtype(model)) == floating_dtype(model)
