"""The trained system: adapted towers (+ optional fusion) + a task head.

``AdaptedSystem(batch)`` runs every tower on its inputs (or on cached taps), builds the feature
streams the task reads, and returns the task's outputs. Only the side networks / adapters, the
fusion and the head hold trainable parameters in UniPT mode.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unipt.backbones import Backbone, load_backbone
from unipt.baselines import build_method
from unipt.config import UniPTConfig
from unipt.errors import ConfigError
from unipt.outputs import AdaptedOutput, masked_mean
from unipt.taps import probe_inputs
from unipt.tasks import Task, build_task
from unipt.train.config import RunConfig, TowerConfig


@dataclass
class Tower:
    """A loaded backbone, what field of a record it reads, and its adapted module."""

    name: str
    field: str
    backbone: Backbone
    module: nn.Module


class JointFusion(nn.Module):
    """Concatenate several streams into one joint token sequence ``[B, L1+L2, D]`` (VQA / grounding).

    Streams of other widths are first projected to ``width`` by a trainable Linear; ``layers``
    trainable Transformer layers then let the streams attend to each other (a small single-stream
    encoder in the spirit of CLIP-ViL's joint sequence).
    """

    def __init__(self, widths: dict[str, int], width: int, layers: int = 1, heads: int = 4):
        super().__init__()
        self.width = width
        self.proj = nn.ModuleDict({k: nn.Linear(w, width) for k, w in widths.items() if w != width})
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True), layers,
            enable_nested_tensor=False,
        ) if layers > 0 else None

    def forward(self, streams: dict[str, AdaptedOutput]) -> AdaptedOutput:
        tokens, masks = [], []
        for name, out in streams.items():
            x = out.last_hidden_state
            x = self.proj[name](x) if name in self.proj else x
            tokens.append(x)
            mask = out.attention_mask
            masks.append(mask if mask is not None else x.new_ones(x.shape[:2]))
        joint, mask = torch.cat(tokens, 1), torch.cat(masks, 1)
        if self.encoder is not None:
            joint = self.encoder(joint, src_key_padding_mask=mask == 0)
        return AdaptedOutput(joint, mask, masked_mean(joint, mask))


class AdaptedSystem(nn.Module):
    """Towers + optional joint fusion + task head."""

    def __init__(self, towers: dict[str, Tower], task: Task, fusion: dict[str, list[str]] | None = None,
                 fusion_width: int | None = None, fusion_layers: int = 1):
        super().__init__()
        self.tower_info = {k: (t.field, t.backbone) for k, t in towers.items()}
        self.towers = nn.ModuleDict({k: t.module for k, t in towers.items()})
        self.task = task
        self.fusion_spec = fusion or {}
        self.fusions = nn.ModuleDict({
            name: JointFusion({s: _out_width(towers[s]) for s in sources}, fusion_width or 256, fusion_layers)
            for name, sources in self.fusion_spec.items()
        })

    def features(self, batch: dict[str, Any]) -> dict[str, AdaptedOutput]:
        streams: dict[str, AdaptedOutput] = {}
        for name, module in self.towers.items():
            if "taps" in batch and name in batch["taps"]:
                out = module.adapt(batch["taps"][name])
            else:
                out = module(**batch["inputs"][name])
            frames = batch.get("frames_per_item", {}).get(name)
            streams[name] = _regroup_frames(out, frames, batch.get(f"{name}_mask")) if frames else out
        for name, fusion in self.fusions.items():
            streams[name] = fusion({s: streams[s] for s in self.fusion_spec[name]})
        return streams

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.task(self.features(batch), batch)

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.task.predict(self.features(batch), batch)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changes: side networks / adapters, fusion and head."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        prefixes = {n.rsplit(".", 1)[0] for n in names}
        state = {}
        for key, value in self.state_dict().items():
            owner = key.rsplit(".", 1)[0]
            if key in names or owner in prefixes:  # trainable params and their modules' buffers (BN stats)
                state[key] = value
        return state


def _regroup_frames(out: AdaptedOutput, frames: int, mask: torch.Tensor | None) -> AdaptedOutput:
    """Per-frame pooled features ``[B*T, D]`` -> a video stream ``[B, T, D]`` with its frame mask."""
    pooled = out.pooled if out.pooled is not None else masked_mean(out.last_hidden_state, out.attention_mask)
    video = pooled.reshape(-1, frames, pooled.shape[-1])
    return AdaptedOutput(video, mask, masked_mean(video, mask))


def _out_width(tower: Tower) -> int:
    """Width of the tower's adapted features (UniPT knows it; other methods are probed once)."""
    config = getattr(tower.module, "config", None)
    if config is not None and hasattr(config, "output_width"):
        return config.output_width
    size = getattr(tower.backbone.preprocess, "size", 224)
    was_training = tower.module.training
    tower.module.eval()
    with torch.no_grad():
        width = tower.module(**probe_inputs(tower.backbone.model, size)).last_hidden_state.shape[-1]
    tower.module.train(was_training)
    return int(width)


def load_tower_backbone(spec: TowerConfig) -> Backbone:
    """The tower's backbone with its preprocessing set to the tower's ``max_length`` / ``image_size``."""
    backbone = load_backbone(spec.backbone, **spec.backbone_options)
    prep = backbone.preprocess
    if spec.max_length is not None and hasattr(prep, "max_length"):
        prep.max_length = spec.max_length
    if spec.image_size is not None and hasattr(prep, "size"):
        prep.size = spec.image_size
    return backbone


def build_tower(name: str, spec: TowerConfig) -> Tower:
    """Load the backbone and wrap it with the tower's method (``unipt``, ``lora``, ``frozen``...)."""
    backbone = load_tower_backbone(spec)
    prep = backbone.preprocess
    options = dict(spec.options)
    if spec.method in ("unipt", "frozen") and backbone.modality == "image" and "probe_size" not in options:
        options["probe_size"] = getattr(prep, "size", 224)
    try:
        module = build_method(spec.method, backbone.model, **options)
    except TypeError as err:
        raise unknown_option_error(name, spec.method, err) or err from err
    return Tower(name, spec.field or name, backbone, module)


def unknown_option_error(tower: str, method: str, err: TypeError) -> ConfigError | None:
    """A misspelt ``towers.<tower>.options`` key as a ConfigError with the closest option names (None when
    ``err`` is not about an unexpected keyword)."""
    match = re.search(r"unexpected keyword argument '([^']+)'", str(err))
    if match is None:
        return None
    key = match.group(1)
    known = [f.name for f in dataclasses.fields(UniPTConfig)] if method == "unipt" else []
    close = difflib.get_close_matches(key, known, n=3)
    hint = f"; did you mean {close}?" if close else (f"; known options: {sorted(known)}" if known else
                                                     f"; see the options of method {method!r}")
    return ConfigError(f"towers.{tower}.options.{key} is not an option of method {method!r}{hint}")


def build_system(config: RunConfig, towers: dict[str, Tower] | None = None,
                 task_options: dict[str, Any] | None = None) -> AdaptedSystem:
    """Towers from ``config.towers``, task from ``config.task``; widths wired automatically.

    ``task_options`` adds what the data decides (``num_classes``, ``num_answers``).
    """
    towers = towers or {name: build_tower(name, spec) for name, spec in config.towers.items()}
    options = {**(task_options or {}), **config.task.options}
    options.pop("answer_min_count", None)
    fusion = options.pop("fusion", None)
    fusion_width = options.pop("fusion_width", None)
    fusion_layers = int(options.pop("fusion_layers", 1))
    widths = {k: _out_width(t) for k, t in towers.items()}
    name = config.task.name
    if name == "retrieval":
        options.setdefault("image_dim", widths.get(options.get("image_tower", "image")))
        options.setdefault("text_dim", widths.get(options.get("text_tower", "text")))
    elif name in ("classification", "vqa", "gqa", "grounding", "mdetr_grounding"):
        tower = options.get("tower") or (next(iter(fusion)) if fusion else next(iter(towers)))
        options.setdefault("tower", tower)
        options.setdefault("hidden_dim", (fusion_width or 256) if fusion else widths[tower])
    task = build_task(name, **options)
    task.init_from_backbones({k: t.backbone.model for k, t in towers.items()})
    return AdaptedSystem(towers, task, fusion, fusion_width, fusion_layers)
