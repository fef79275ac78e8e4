"""Run checkpoints: only what training changes (safetensors) + loop state, written atomically.

``<run>/checkpoints/<tag>/`` holds ``trainable.safetensors`` (side networks / adapters, fusion, head),
``state.pt`` (optimiser, scheduler, epoch, best metric; read back with ``weights_only=True``, so no
arbitrary pickle runs) and ``meta.json``. A new checkpoint is written to a temporary folder
(``.<tag>.tmp``) and swapped in with two renames (the old one moves to ``.<tag>.old`` first). A crash
leaves the previous checkpoint intact; a crash between the two renames leaves no ``<tag>`` at all, and
:func:`recover_checkpoint` (run before resuming) puts the complete newer copy in place, else the older.
"""

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
    """(weights, loop state, meta) of a checkpoint folder; names the missing or damaged file.

    Raises:
        FileNotFoundError: a file of the checkpoint is missing.
        DamagedFileError: a file is empty, truncated or overwritten.
    """
    directory = Path(directory)
    for name in (WEIGHTS, STATE, META):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"checkpoint {directory} is incomplete: {name} is missing")
    fix = _good_copy(directory)
    weights = read_safetensors(directory / WEIGHTS, fix)
    state = read_torch_state(directory / STATE, fix)
    try:
        meta = json.loads((directory / META).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DamagedFileError(f"{directory / META} is damaged ({err}); {fix}") from err
    return weights, state, meta


def _good_copy(directory: Path) -> str:
    other = "last" if directory.name == "best" else "best"
    return (f"the checkpoint was not written completely or was changed since; use checkpoints/{other} of the same "
            "run if it is intact, or rerun `unipt train` with the run config (it resumes from checkpoints/last)")


def is_complete(directory: Path) -> bool:
    """True when every file of the checkpoint folder exists and parses."""
    try:
        load_checkpoint(directory)
    except (OSError, ValueError):
        return False
    return True


def recover_checkpoint(directory: Path) -> str | None:
    """Repair what a crash in the middle of :func:`save_checkpoint` left, before ``directory`` is read.

    Killed between its two renames, a save leaves ``.<tag>.old`` (the previous checkpoint) and a complete
    ``.<tag>.tmp`` (the new one) but no ``<tag>``: the complete newer copy wins, else the older one.
    Leftover temporary folders next to an intact checkpoint are removed.

    Returns:
        a sentence saying what was recovered, or None when there was nothing to recover.
    """
    directory = Path(directory)
    tmp, old = directory.with_name(f".{directory.name}.tmp"), directory.with_name(f".{directory.name}.old")
    note = None
    if not directory.exists():
        for candidate, what in ((tmp, "the newer copy, written completely before the interrupted swap"),
                                (old, "the previous copy: the newer one was incomplete")):
            if candidate.is_dir() and is_complete(candidate):
                candidate.rename(directory)
                epoch = json.loads((directory / META).read_text()).get("epoch")
                note = f"recovered {directory} (epoch {epoch}) from {candidate.name}, {what}"
                break
    for leftover in (tmp, old):
        if leftover.exists() and directory.exists():
            shutil.rmtree(leftover, ignore_errors=True)
    return note


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
