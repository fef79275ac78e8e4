"""Read released MDETR checkpoints (or our safetensors copies) into :class:`~unipt.models.mdetr.model.MDETR`.

Released files (``pretrained_resnet101_checkpoint.pth``, ``refcoco_EB3_checkpoint.pth``...) are
``torch.save`` dicts ``{"model", "model_ema"?, "optimizer"?, "epoch"?, "args"}``. They are read with
``torch.load(weights_only=True)`` and only ``argparse.Namespace`` allowed besides tensors, so no
arbitrary object is ever unpickled. Like the released ``--load``, the EMA weights are used when present.

The network's sizes are read from the tensors (:func:`config_from_state_dict`); what shapes cannot tell
(attention heads, dropout, the timm body's name) comes from the checkpoint's ``args``. Every key must
match: missing or unexpected keys and shape mismatches raise :class:`CheckpointMismatchError` naming
them. Buffers that newer ``transformers`` recompute (RoBERTa's ``embeddings.position_ids`` /
``token_type_ids``) and BatchNorm's ``num_batches_tracked`` are the only keys dropped silently.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from unipt.models.mdetr.config import MDETRConfig, ResNetBodyConfig, TextEncoderConfig
from unipt.models.mdetr.model import MDETR

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
CONFIG_METADATA_KEY = "mdetr_config"
# Recomputable buffers some versions of the libraries saved; never weights.
BENIGN_KEYS = re.compile(r"(\.embeddings\.position_ids|\.embeddings\.token_type_ids|\.num_batches_tracked)$")
TEXT = "transformer.text_encoder."
BODY = "backbone.0.body."


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not fit the model; ``missing`` / ``unexpected`` / ``mismatched``."""

    def __init__(self, source: str, missing: list[str], unexpected: list[str], mismatched: list[str]):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        parts = [f"{source} does not fit MDETR:"]
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                more = " ..." if len(keys) > 8 else ""
                parts.append(f"  {len(keys)} {label} key(s) {_summary(keys)}: {keys[:8]}{more}")
        parts.append(
            "  Released MDETR checkpoints keep the model under 'model' / 'model_ema' with keys such as "
            "'backbone.0.body.conv1.weight', 'transformer.encoder.layers.0.self_attn.in_proj_weight', "
            "'class_embed.weight'. Question-answering (qa_*, answer_*) and CLEVR (isfinal_embed) heads are "
            "not supported."
        )
        super().__init__("\n".join(parts))


def _summary(keys: list[str]) -> str:
    """``(by prefix: transformer.encoder 12, class_embed 2)``: where the keys are."""
    counts = Counter(".".join(k.split(".")[:2]) for k in keys)
    return "(by prefix: " + ", ".join(f"{p} {n}" for p, n in counts.most_common(5)) + ")"


def find_checkpoint(path: str | PathLike[str]) -> Path:
    """``path`` itself, or the single checkpoint file inside the folder ``path``."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(
            f"MDETR checkpoint {path} not found (a .pth / .safetensors file or a folder holding one)")
    found = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
    if len(found) != 1:
        raise FileNotFoundError(
            f"{path} must hold exactly one checkpoint ({'/'.join(CHECKPOINT_SUFFIXES)}); "
            f"found {[p.name for p in found]}"
        )
    return found[0]


def read_checkpoint(path: str | PathLike[str],
                    prefer_ema: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, settings) of a released ``.pth`` or a safetensors file.

    ``settings`` is the checkpoint's ``args`` (released files) or the config saved by :func:`save_mdetr`.
    A ``module.`` prefix (a DDP-wrapped save) is removed.
    """
    file = find_checkpoint(path)
    if file.suffix == ".safetensors":
        with safe_open(str(file), framework="pt") as handle:
            state = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open is not a dict
            meta = handle.metadata() or {}
        settings = json.loads(meta[CONFIG_METADATA_KEY]) if CONFIG_METADATA_KEY in meta else {}
    else:
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                loaded = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(
                f"{file} could not be read as tensors only ({err}). unipt never unpickles arbitrary objects; "
                "if you trust the file, re-save its state dict: torch.save({'model': sd}, 'clean.pth')"
            ) from err
        settings = {}
        if isinstance(loaded, dict) and ("model" in loaded or "model_ema" in loaded):
            args = loaded.get("args")
            settings = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
            key = "model_ema" if prefer_ema and isinstance(loaded.get("model_ema"), dict) else "model"
            loaded = loaded[key]
        if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise ValueError(f"{file} holds no MDETR state dict (expected a dict of tensors or {{'model': ...}})")
        state = loaded
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, settings


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.match(k))})


def _resnet_config(state: dict[str, torch.Tensor]) -> ResNetBodyConfig:
    depths = tuple(_count(state, rf"{re.escape(BODY)}layer{i}\.(\d+)\.conv1\.weight") for i in range(1, 5))
    widths = tuple(state[f"{BODY}layer{i}.0.conv1.weight"].shape[0] for i in range(1, 5))
    expansion = state[f"{BODY}layer1.0.conv3.weight"].shape[0] // widths[0]
    return ResNetBodyConfig(depths, widths, state[f"{BODY}conv1.weight"].shape[0], expansion)  # type: ignore[arg-type]


def _text_config(state: dict[str, torch.Tensor], settings: dict[str, Any]) -> TextEncoderConfig:
    words = state[f"{TEXT}embeddings.word_embeddings.weight"]
    hidden = words.shape[1]
    # RoBERTa base / large / distil all use 64 dimensions per head; shapes cannot tell the head count.
    heads = int(settings.get("text_num_attention_heads") or max(1, hidden // 64))
    return TextEncoderConfig(
        vocab_size=words.shape[0],
        hidden_size=hidden,
        num_hidden_layers=_count(state, rf"{re.escape(TEXT)}encoder\.layer\.(\d+)\."),
        num_attention_heads=heads,
        intermediate_size=state[f"{TEXT}encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state[f"{TEXT}embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state[f"{TEXT}embeddings.token_type_embeddings.weight"].shape[0],
        pad_token_id=int(settings.get("text_pad_token_id", 1)),
        add_pooling_layer=f"{TEXT}pooler.dense.weight" in state,
    )


def config_from_state_dict(state: dict[str, torch.Tensor], settings: dict[str, Any] | None = None) -> MDETRConfig:
    """The :class:`MDETRConfig` a state dict was made with: sizes from tensor shapes; heads, dropout and
    the timm body's name from ``settings`` (the checkpoint's ``args``; defaults as released)."""
    settings = dict(settings or {})
    if "query_embed.weight" not in state or f"{TEXT}embeddings.word_embeddings.weight" not in state:
        raise CheckpointMismatchError(
            "the checkpoint", [k for k in ("query_embed.weight", f"{TEXT}embeddings.word_embeddings.weight")
                               if k not in state], [], [])
    queries, width = state["query_embed.weight"].shape
    body_channels = state["input_proj.weight"].shape[1]
    values: dict[str, Any] = dict(
        hidden_dim=width,
        nheads=int(settings.get("nheads", 8)),
        enc_layers=_count(state, r"transformer\.encoder\.layers\.(\d+)\."),
        dec_layers=_count(state, r"transformer\.decoder\.layers\.(\d+)\."),
        dim_feedforward=state["transformer.encoder.layers.0.linear1.weight"].shape[0],
        dropout=float(settings.get("dropout", 0.1)),
        num_queries=queries,
        num_classes=state["class_embed.weight"].shape[0] - 1,
        contrastive_align="contrastive_align_projection_image.weight" in state,
        contrastive_loss="transformer.CLS.weight" in state,
        body_channels=body_channels,
        text=_text_config(state, settings),
    )
    if values["contrastive_align"]:
        values["contrastive_hdim"] = state["contrastive_align_projection_image.weight"].shape[0]
    elif "contrastive_projection_image.weight" in state:
        values["contrastive_hdim"] = state["contrastive_projection_image.weight"].shape[0]
    if f"{BODY}layer4.0.conv1.weight" in state:
        values.update(image_body="resnet", resnet=_resnet_config(state))
    else:
        name = str(settings.get("backbone", ""))
        values["image_body"] = f"timm:{name[len('timm_'):]}" if name.startswith("timm_") else settings.get(
            "image_body", "custom")
    return MDETRConfig(**values)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``state`` without benign buffers; raises :class:`CheckpointMismatchError` unless it fits ``model`` exactly."""
    state = {k: v for k, v in state.items() if not BENIGN_KEYS.search(k)}
    own = {k: v for k, v in model.state_dict().items() if not BENIGN_KEYS.search(k)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                        for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing, unexpected, mismatched)
    return state


def load_mdetr(path: str | PathLike[str], *, image_body: nn.Module | None = None, config: MDETRConfig | None = None,
               prefer_ema: bool = True) -> MDETR:
    """Build MDETR with the checkpoint's sizes and load every tensor (strict; see the module docstring).

    Args:
        path: a released ``.pth``, a safetensors file from :func:`save_mdetr`, or a folder holding one.
        image_body: the module under ``backbone.0.body`` for bodies not built by name (its keys must match).
        config: use these sizes instead of reading them from the checkpoint.
        prefer_ema: take ``model_ema`` over ``model`` when the file has both.
    """
    return load_mdetr_with_settings(path, image_body=image_body, config=config, prefer_ema=prefer_ema)[0]


def load_mdetr_with_settings(
    path: str | PathLike[str], *, image_body: nn.Module | None = None, config: MDETRConfig | None = None,
    prefer_ema: bool = True,
) -> tuple[MDETR, dict[str, Any]]:
    """:func:`load_mdetr` that also returns the checkpoint's settings (its ``args``), reading the file once."""
    file = find_checkpoint(path)
    state, settings = read_checkpoint(file, prefer_ema)
    if config is None:
        saved = settings.get("config") if isinstance(settings.get("config"), dict) else None
        config = MDETRConfig.from_dict(saved) if saved else config_from_state_dict(state, settings)
    model = MDETR(config, image_body=image_body)
    model.load_state_dict(check_state_dict(model, state, str(file)), strict=False)
    return model, settings


def save_mdetr(model: MDETR, path: str | PathLike[str]) -> Path:
    """Write ``model`` as one safetensors file (released key layout) with its config in the metadata."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out), metadata={CONFIG_METADATA_KEY: json.dumps({"config": model.config.to_dict()})})
    return out
