"""Run checkpoints: only what training changes (safetensors) + loop state, written atomically.

``<run>/checkpoints/<tag>/`` holds ``trainable.safetensors`` (side networks / adapters, fusion, head),
``state.pt`` (optimiser, scheduler, epoch, best metric; read back with ``weights_only=True``, so no
arbitrary pickle runs) and ``meta.json``. A new checkpoint is written to a temporary folder and
swapped in with renames: a crash leaves the previous one intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "trainable.safetensors"
STATE = "state.pt"
META = "meta.json"


def save_checkpoint(directory: Path, weights: dict[str, torch.Tensor], state: dict[str, Any],
                    meta: dict[str, Any]) -> None:
    """Write a checkpoint folder atomically (``directory`` is replaced as a whole)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / WEIGHTS))
    torch.save(state, tmp / STATE)
    (tmp / META).write_text(json.dumps(meta, indent=2, default=str))
    old = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(weights, loop state, meta) of a checkpoint folder; names the missing file when incomplete."""
    directory = Path(directory)
    for name in (WEIGHTS, STATE, META):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"checkpoint {directory} is incomplete: {name} is missing")
    state = torch.load(directory / STATE, weights_only=True, map_location="cpu")
    return load_file(str(directory / WEIGHTS)), state, json.loads((directory / META).read_text())


def restore_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Load trainable weights into ``module``; every saved key must exist (frozen weights may be absent)."""
    own = module.state_dict()
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise ValueError(
            f"checkpoint {source} has weights this system does not: {unknown[:5]}... It was saved for another "
            "run config (towers, methods or task options differ)."
        )
    mismatched = [k for k, v in weights.items() if own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"checkpoint {source} has other shapes for {mismatched[:5]}; the run config changed")
    module.load_state_dict(weights, strict=False)
