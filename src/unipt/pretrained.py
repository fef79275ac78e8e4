"""The saved-model format of UniPT: one folder, ``unipt_config.json`` + ``unipt_side.safetensors``.

``unipt_config.json`` holds ``format_version``, ``unipt_version``, the ``config`` (what the user asked
for), the ``resolved`` taps (what the backbone determined: module names, widths, input kind) and the
``backbone`` fingerprint (class, structure hash, weights hash). Everything here is plain JSON and
safetensors: no pickle is ever read.

Format 2 names every sub-layer (``branch.layers.0.linear.weight``, ``branch.fusion.norm.bias``,
``up.linear.weight``). Format 1 (unipt 0.1) numbered them inside ``nn.Sequential`` containers
(``branch.down_projs.0.1.weight`` was a LayerNorm under one down-projection form and the Linear under
another) and kept the resolved values inside the config; it is read and converted on load.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from unipt.config import UniPTConfig
from unipt.errors import DamagedFileError
from unipt.files import atomic_write, atomic_write_json, read_safetensors, remove_stray_temp_files
from unipt.fingerprint import architecture_fingerprint, architecture_hash, same_architecture, same_dtype
from unipt.taps import ResolvedTaps
from unipt.version import __version__

CONFIG_NAME = "unipt_config.json"
WEIGHTS_NAME = "unipt_side.safetensors"
FORMAT_VERSION = 2
LEGACY_RUN_WEIGHTS = "trainable.safetensors"
GOOD_COPY = ("the side network was not saved completely or the file was changed since; save it again with "
             "save_pretrained, or copy the folder again from where it was trained")


def write_pretrained(directory: str | os.PathLike[str], side_state: dict[str, torch.Tensor],
                     meta: dict[str, Any]) -> None:
    """Write the side network's tensors and ``meta`` (plus the format and package versions), each atomically."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    remove_stray_temp_files(out, (WEIGHTS_NAME, CONFIG_NAME))  # left by a save that was killed
    state = {k: v.detach().contiguous().cpu() for k, v in side_state.items()}
    meta = {"format_version": FORMAT_VERSION, "unipt_version": __version__, **meta}
    atomic_write(out / WEIGHTS_NAME, lambda path: save_file(state, str(path), metadata={"format": "pt"}))
    atomic_write_json(out / CONFIG_NAME, meta, indent=2)


def saved_sides(directory: str | os.PathLike[str]) -> list[tuple[str | None, Path]]:
    """The side networks saved in ``directory``: the folder itself first (its name is in its JSON, hence
    ``None``), then each sub-folder that holds a saved side, by name."""
    src = Path(directory)
    subs = sorted(p for p in src.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file()) if src.is_dir() else []
    return [(None, src), *((p.name, p) for p in subs)]


def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``unipt_config.json`` of a saved folder; names what is missing and refuses a newer format."""
    src = Path(directory)
    if (src / LEGACY_RUN_WEIGHTS).is_file() and not (src / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"{src} is a checkpoint of a run made by unipt 0.1 ({LEGACY_RUN_WEIGHTS} holds every tower at "
            f"once). `unipt eval` and `unipt train` (resume) still read it; to get one save_pretrained folder "
            f"per tower, run: python -m unipt.train.convert {src.parent.parent}"
        )
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (src / name).is_file():
            raise FileNotFoundError(
                f"{src / name} not found: {src} is not a saved UniPT model "
                f"(save_pretrained writes {CONFIG_NAME} and {WEIGHTS_NAME})"
            )
    try:
        meta = json.loads((src / CONFIG_NAME).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DamagedFileError(f"{src / CONFIG_NAME} is damaged ({err}); {GOOD_COPY}") from err
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{src} was saved by a newer unipt (format {meta['format_version']}); upgrade unipt to load it"
        )
    return meta


def backbone_fingerprint(backbone: nn.Module, fingerprint: dict[str, str]) -> dict[str, str]:
    """What a saved side network records of its backbone: class, structure and weights hashes, and the
    architecture (names and shapes, not dtypes) with the dtype, so a dtype change is accepted."""
    return {**fingerprint, **architecture_fingerprint(backbone)}


def check_backbone(meta: dict[str, Any], backbone: nn.Module, fingerprint: dict[str, str], source: Path) -> None:
    """Refuse another architecture (any dtype); warn about other weights of the same one."""
    saved = meta.get("backbone", {})
    if not same_architecture(saved, backbone):
        raise ValueError(
            f"{source} holds a side network trained on a different backbone ({saved.get('class')}, "
            f"structure {saved.get('architecture') or saved['structure']}); this backbone is "
            f"{type(backbone).__name__} ({architecture_hash(backbone)}). Load it onto the backbone it was "
            "trained with."
        )
    # Weights stored in another dtype (an fp32 run loaded onto the bf16 backbone) cannot be compared exactly.
    if same_dtype(saved, backbone) and saved.get("weights") and saved["weights"] != fingerprint["weights"]:
        warnings.warn(
            f"{source} was trained on the same architecture with other weights; outputs will differ "
            "from the saved run", stacklevel=3,
        )


# How the same function is computed, not which function: a saved side network loads whatever these say.
EXECUTION_FIELDS = ("kernel", "memory", "query_block", "compile", "probe_size", "keep_backbone_dropout")
# What format 1 resolved into the config itself (format 2 keeps it in "resolved").
RESOLVED_FIELDS = ("taps", "decoder_taps", "tap_source", "input_kind", "in_widths", "decoder_widths", "final_width")


def saved_config(meta: dict[str, Any]) -> tuple[UniPTConfig, ResolvedTaps | None]:
    """The saved config and resolved taps (``None`` for format 1, whose config holds the resolved values:
    resolving it again on the backbone gives them back)."""
    config = UniPTConfig.from_dict(meta["config"])
    resolved = meta.get("resolved")
    return config, ResolvedTaps.from_dict(resolved) if resolved is not None else None


def incompatibilities(meta: dict[str, Any], config: UniPTConfig, resolved: ResolvedTaps) -> list[str]:
    """Why a saved side network cannot be loaded into a model built from ``config`` / ``resolved``
    (empty when it can). Execution fields may differ."""
    saved, own = saved_config(meta)[0].to_dict(), config.to_dict()
    skip = set(EXECUTION_FIELDS)
    problems = []
    if "resolved" in meta:
        theirs, mine = meta["resolved"], resolved.to_dict()
        problems += [f"resolved {k}={theirs.get(k)!r} (here {mine[k]!r})" for k in mine if theirs.get(k) != mine[k]]
    else:  # format 1: the resolved values sit in the config
        skip |= set(RESOLVED_FIELDS)
        mine = resolved.to_dict()
        problems += [f"{k}={saved[k]!r} (here {mine[k]!r})" for k in RESOLVED_FIELDS
                     if saved.get(k) is not None and saved[k] != mine[k]]
    problems += [f"{k}={saved.get(k)!r} (here {own[k]!r})" for k in own if k not in skip and saved.get(k) != own[k]]
    return problems


def read_side_state(directory: str | os.PathLike[str], fix: str = GOOD_COPY) -> dict[str, torch.Tensor]:
    """The side network's tensors as saved (keys of the folder's format version); a damaged file is named
    with ``fix`` (where a good copy comes from)."""
    return read_safetensors(Path(directory) / WEIGHTS_NAME, fix)


def migrate_side_state(state: dict[str, torch.Tensor], format_version: int, forms: dict[str, str]
                       ) -> dict[str, torch.Tensor]:
    """Side-network tensors saved in ``format_version``, keyed for the current format.

    Args:
        forms: ``down_proj``, ``fusion``, ``up_proj`` and ``input_kind`` of the saved config: format 1's
            positional keys mean different sub-layers under different forms; ``task_type`` ``causal_lm``
            for the causal side network (:class:`~unipt.nn.causal.CausalSideNetwork`), whose containers
            keep their format-1 names (``guide_proj``, ``down_projs.<k>``, ``fusion``, ``up_proj``).
    """
    if format_version > FORMAT_VERSION:
        raise ValueError(f"format {format_version} is newer than this unipt's ({FORMAT_VERSION}); upgrade unipt")
    if format_version >= 2:
        return dict(state)
    key_of = _v1_causal_key if forms.get("task_type") == "causal_lm" else _v1_key
    return {key_of(key, forms): value for key, value in state.items()}


# Format 1: nn.Sequential positions -> format 2 names, per form (ReLU and the MLP's ReLU held no tensors).
_V1_PROJECTION = {"linear_norm": {"0": "linear", "1": "norm"}, "relu_linear": {"1": "linear"}}
_V1_FUSION = {"linear_norm": {"0": "linear", "1": "norm"}, "mlp_norm": {"0": "fc1", "2": "fc2", "3": "norm"}}
_V1_UP = {"relu_linear": {"1": "linear"}, "relu_linear_norm": {"1": "linear", "2": "norm"}}
_V1_BRANCH = re.compile(r"^(branch|encoder|decoder)\.(guide_proj|down_projs\.\d+|crossers\.\d+|fusion)\.(\d+)\.(.+)$")
_V1_UP_KEY = re.compile(r"^up_proj\.(?:(\d+)\.)?(.+)$")
_V1_CAUSAL = re.compile(r"^(guide_proj|down_projs\.\d+|fusion)\.(\d+)\.(.+)$")


def _v1_key(key: str, forms: dict[str, str]) -> str:
    if match := _V1_BRANCH.match(key):
        branch, part, position, rest = match.groups()
        if part == "guide_proj":
            table = _V1_PROJECTION["relu_linear" if forms["input_kind"] == "single_query" else forms["down_proj"]]
            part = "guide"
        elif part == "fusion":
            table = _V1_FUSION[forms["fusion"]]
        elif part.startswith("down_projs"):
            table, part = _V1_PROJECTION[forms["down_proj"]], "layers" + part[len("down_projs"):]
        else:
            table = _V1_PROJECTION["linear_norm"]  # crossers: Linear -> Norm
        return f"{branch}.{part}.{table[position]}.{rest}"
    if match := _V1_UP_KEY.match(key):
        position, rest = match.groups()
        name = "linear" if position is None else _V1_UP[forms["up_proj"]][position]  # form "linear": a bare Linear
        return f"up.{name}.{rest}"
    return key  # named in format 1 already: aggregation.gate, pools.<k>.guide_to_stage


def _v1_causal_key(key: str, forms: dict[str, str]) -> str:
    if match := _V1_CAUSAL.match(key):
        part, position, rest = match.groups()
        table = _V1_FUSION[forms["fusion"]] if part == "fusion" else _V1_PROJECTION[forms["down_proj"]]
        return f"{part}.{table[position]}.{rest}"
    if match := _V1_UP_KEY.match(key):
        position, rest = match.groups()
        name = "linear" if position is None else _V1_UP[forms["up_proj"]][position]
        return f"up_proj.{name}.{rest}"
    return key  # aggregation.gate
