"""Run checkpoints: one ``save_pretrained`` folder per tower + the head + the run config, written atomically.

``<run>/checkpoints/<tag>/`` (``tag`` is ``best`` or ``last``) holds::

    <tower>/            the tower's own save_pretrained folder: a UniPT tower loads with
                        UniPTModel.from_pretrained(backbone, "<run>/checkpoints/best/<tower>")
    head.safetensors    the task head and the fusion layers (what is trained outside the towers)
    run_config.yaml     the run config that built the system
    meta.json           epoch, best metrics, history
    trainer_state.pt    optimiser, scheduler and epoch, for resuming only (read with weights_only=True,
                        so no arbitrary pickle runs)

A new checkpoint is written to a temporary folder (``.<tag>.tmp``) and swapped in with two renames (the old
one moves to ``.<tag>.old`` first). A crash leaves the previous checkpoint intact; a crash between the two
renames leaves no ``<tag>`` at all, and :func:`recover_checkpoint` (run before resuming) puts the complete
newer copy in place, else the older. A damaged file is named with where a good copy comes from.

Checkpoints of unipt 0.1 (one ``trainable.safetensors`` for the whole system, ``state.pt``) are still
read; ``python -m unipt.train.convert RUN`` rewrites them in this layout.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from unipt.errors import DamagedFileError
from unipt.files import read_safetensors, read_torch_state
from unipt.method import METHOD_WEIGHTS, load_into
from unipt.model import DEFAULT_SIDE, UniPTModel
from unipt.pretrained import LEGACY_RUN_WEIGHTS, WEIGHTS_NAME, read_meta, saved_sides
from unipt.train.system import AdaptedSystem

HEAD = "head.safetensors"
STATE = "trainer_state.pt"
META = "meta.json"
RUN_CONFIG = "run_config.yaml"
LEGACY_STATE = "state.pt"


def save_checkpoint(directory: Path, system: AdaptedSystem, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write a checkpoint folder atomically (``directory`` is replaced as a whole).

    Args:
        system: the trained system (unwrapped from DDP); every tower saves itself with ``save_pretrained``.
        state: optimiser / scheduler / epoch for resuming.
        meta: JSON data (``epoch``, ``best``, ``history``, ``config``: the run config as a dict).
    """
    def write_towers(folder: Path) -> None:
        for name, tower in system.towers.items():
            tower.save_pretrained(folder / name, model_card=False)  # the run's own card sits at the run folder

    write_checkpoint(directory, write_towers, head_state(system), state, meta)


def write_checkpoint(directory: Path, write_towers: Callable[[Path], None], head: dict[str, torch.Tensor],
                     state: dict[str, Any], meta: dict[str, Any]) -> None:
    """The checkpoint layout, written atomically: ``write_towers(folder)`` writes each tower's
    ``save_pretrained`` folder into ``folder``; then the ``head`` tensors, the loop ``state``, ``meta`` and
    the run config (``meta["config"]``). :func:`save_checkpoint` and the causal_lm runs (``unipt.lm``) use it."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_towers(tmp)
    save_file({k: v.detach().contiguous().cpu() for k, v in head.items()}, str(tmp / HEAD))
    torch.save(state, tmp / STATE)
    (tmp / META).write_text(json.dumps(meta, indent=2, default=str))
    (tmp / RUN_CONFIG).write_text(yaml.safe_dump(meta["config"], sort_keys=False))
    old = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path, system: AdaptedSystem) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a checkpoint's trained weights into ``system``; returns (loop state, meta).

    Names the missing file when the folder is incomplete; reads unipt-0.1 checkpoints too.
    """
    directory = Path(directory)
    if is_legacy(directory):
        return _load_legacy(directory, system)
    missing = [n for n in (*system.towers, HEAD, STATE, META) if not (directory / n).exists()]
    if missing:
        raise FileNotFoundError(f"checkpoint {directory} is incomplete: {', '.join(missing)} missing")
    fix = good_copy(directory)
    for name, tower in system.towers.items():
        tower.load_pretrained(directory / name, fix=fix)
    load_into(system, read_safetensors(directory / HEAD, fix), directory / HEAD)
    return read_loop_state(directory)


def read_loop_state(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint's loop state (``trainer_state.pt``: optimiser, scheduler, epoch) and ``meta.json``."""
    fix = good_copy(directory)
    return read_torch_state(directory / STATE, fix), _read_meta(directory, fix)


def head_state(system: AdaptedSystem) -> dict[str, torch.Tensor]:
    """The trained tensors outside the towers: task head and fusions (keys as in ``system.state_dict()``)."""
    return {k: v for k, v in system.trainable_state_dict().items() if not k.startswith("towers.")}


def checkpoint_state(directory: Path) -> dict[str, torch.Tensor]:
    """Every trained tensor of a checkpoint, keyed as in the system's ``state_dict()`` (what
    ``system.trainable_state_dict()`` held when it was saved). Reads files only, no backbone; a unipt-0.1
    checkpoint's keys are returned as it saved them (format-1 side-network names)."""
    directory = Path(directory)
    fix = good_copy(directory)
    if is_legacy(directory):
        return read_safetensors(directory / LEGACY_RUN_WEIGHTS, fix)
    state = read_safetensors(directory / HEAD, fix)
    for tower in sorted(p for p in directory.iterdir() if p.is_dir()):
        if (tower / WEIGHTS_NAME).is_file():
            for name, folder in saved_sides(tower):
                name = name or read_meta(folder).get("side", DEFAULT_SIDE)
                prefix = f"towers.{tower.name}.sides.{name}."
                state.update({prefix + k: v for k, v in read_safetensors(folder / WEIGHTS_NAME, fix).items()})
        elif (tower / METHOD_WEIGHTS).is_file():
            weights = read_safetensors(tower / METHOD_WEIGHTS, fix)
            state.update({f"towers.{tower.name}.{k}": v for k, v in weights.items()})
    return state


def is_complete(directory: Path) -> bool:
    """True when every file of the checkpoint folder exists and parses."""
    directory = Path(directory)
    try:
        names = (LEGACY_RUN_WEIGHTS, LEGACY_STATE, META) if is_legacy(directory) else (HEAD, STATE, META)
        if not all((directory / name).is_file() for name in names):
            return False
        checkpoint_state(directory)
        read_torch_state(directory / (LEGACY_STATE if is_legacy(directory) else STATE), good_copy(directory))
        _read_meta(directory, good_copy(directory))
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


def good_copy(directory: Path) -> str:
    """Where a good copy of a damaged file of checkpoint ``directory`` comes from."""
    other = "last" if directory.name == "best" else "best"
    return (f"the checkpoint was not written completely or was changed since; use checkpoints/{other} of the same "
            "run if it is intact, or rerun `unipt train` with the run config (it resumes from checkpoints/last)")


def _read_meta(directory: Path, fix: str) -> dict[str, Any]:
    try:
        return json.loads((directory / META).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DamagedFileError(f"{directory / META} is damaged ({err}); {fix}") from err


def is_legacy(directory: Path) -> bool:
    """A unipt-0.1 checkpoint: the whole system's trained weights in one ``trainable.safetensors``."""
    return (Path(directory) / LEGACY_RUN_WEIGHTS).is_file() and not (Path(directory) / HEAD).is_file()


def _load_legacy(directory: Path, system: AdaptedSystem) -> tuple[dict[str, Any], dict[str, Any]]:
    for name in (LEGACY_RUN_WEIGHTS, LEGACY_STATE, META):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"checkpoint {directory} is incomplete: {name} is missing")
    fix = good_copy(directory)
    weights = read_safetensors(directory / LEGACY_RUN_WEIGHTS, fix)
    for name, tower in system.towers.items():
        if isinstance(tower, UniPTModel):  # format-1 side network: its keys are converted on load
            prefix = f"towers.{name}.side."
            side = {k[len(prefix):]: weights.pop(k) for k in list(weights) if k.startswith(prefix)}
            tower.load_side_state(side, format_version=1, source=directory / LEGACY_RUN_WEIGHTS)
    load_into(system, weights, directory / LEGACY_RUN_WEIGHTS)
    return read_torch_state(directory / LEGACY_STATE, fix), _read_meta(directory, fix)
