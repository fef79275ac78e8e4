"""Checkpoints of a ``causal_lm`` run: the trained tensors (safetensors), the loop state and meta, written
atomically. A causal-LM run has one method over one decoder and no task head, so its checkpoint is one
``trainable.safetensors`` (LoRA and full fine-tuning included) rather than the towers' save_pretrained
folders of :mod:`unipt.train.checkpoint`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from unipt.errors import DamagedFileError
from unipt.files import read_safetensors, read_torch_state

WEIGHTS = "trainable.safetensors"
STATE = "state.pt"
META = "meta.json"


def save_checkpoint(directory: Path, weights: dict[str, torch.Tensor], state: dict[str, Any],
                    meta: dict[str, Any]) -> None:
    """Write a checkpoint folder atomically (``directory`` is replaced as a whole: written to ``.<tag>.tmp``,
    then swapped in with two renames)."""
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
    """(weights, loop state, meta) of a checkpoint folder; names the missing or damaged file."""
    directory = Path(directory)
    for name in (WEIGHTS, STATE, META):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"checkpoint {directory} is incomplete: {name} is missing")
    other = "last" if directory.name == "best" else "best"
    fix = (f"the checkpoint was not written completely or was changed since; use checkpoints/{other} of the same "
           "run if it is intact, or rerun `unipt train` with the run config (it resumes from checkpoints/last)")
    weights = read_safetensors(directory / WEIGHTS, fix)
    state = read_torch_state(directory / STATE, fix)
    try:
        meta = json.loads((directory / META).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DamagedFileError(f"{directory / META} is damaged ({err}); {fix}") from err
    return weights, state, meta
