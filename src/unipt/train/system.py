"""The trained system: adapted towers (+ optional fusion) + a task head.

``AdaptedSystem(batch)`` runs every tower on its inputs (or on cached taps), builds the feature
streams the task reads, and returns the task's outputs. Only the side networks / adapters, the
fusion and the head hold trainable parameters in UniPT mode.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unipt.backbones import Backbone, load_backbone
from unipt.batch import Batch
from unipt.errors import ConfigError
from unipt.method import AdaptedMethod, FrozenTapMethod
from unipt.model import UniPTModel
from unipt.models.clipvil.answers import init_head_from_checkpoint
from unipt.outputs import AdaptedOutput, masked_mean
from unipt.registry import UnknownOptionError, build_method
from unipt.taps import Taps, probe_inputs
from unipt.tasks import MultiTask, Task, build_task
from unipt.tasks.vqa import AnswerPrediction
from unipt.train.config import RunConfig, TowerConfig


@dataclass
class Tower:
    """A loaded backbone, what field of a record it reads, and its adapted module."""

    name: str
    field: str
    backbone: Backbone
    module: AdaptedMethod


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
    """Towers + optional joint fusion + task head (or several task heads: :class:`MultiTask`).

    Attributes:
        backbone_seconds: with several tasks, the time spent running the frozen backbones of ``unipt`` /
            ``frozen`` towers live: what separate runs would each have paid again.
    """

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
        self.backbone_seconds = 0.0
        self.timed = isinstance(task, MultiTask)

    def features(self, batch: Batch) -> dict[str, AdaptedOutput]:
        """Every tower's features (from its backbone inputs, or from cached taps), then the fusions."""
        streams: dict[str, AdaptedOutput] = {}
        for name, module in self.towers.items():
            tower = batch.towers[name]
            if tower.taps is not None:
                if not isinstance(module, FrozenTapMethod):
                    raise TypeError(f"tower {name!r} ({module.name}) cannot read cached taps")
                out = module.adapt(tower.taps)
            elif isinstance(module, FrozenTapMethod):
                out = module.adapt(self._tap(module, tower.inputs), consume=True)
            else:
                out = module(**tower.inputs)
            frames = tower.frames_per_item
            if frames:
                out = ({side: _regroup_frames(o, frames, tower.frame_mask) for side, o in out.items()}
                       if isinstance(out, dict) else _regroup_frames(out, frames, tower.frame_mask))
            streams[name] = out
        for name, fusion in self.fusions.items():
            streams[name] = fusion({s: streams[s] for s in self.fusion_spec[name]})
        return streams

    def _tap(self, module: FrozenTapMethod, inputs: dict[str, Any]) -> Taps:
        """The frozen backbone's taps; timed with several tasks (synchronised on an accelerator, so the time
        is the backbone's)."""
        if not self.timed:
            return module.tap(**inputs)
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        sync()
        start = time.perf_counter()
        taps = module.tap(**inputs)
        sync()
        self.backbone_seconds += time.perf_counter() - start
        return taps

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.task(self.features(batch), batch.targets)

    @torch.no_grad()
    def predict(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.task.predict(self.features(batch), batch.targets)

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
    if tower.module.output_width is not None:
        return tower.module.output_width
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


def build_tower(name: str, spec: TowerConfig, sides: list[str] | None = None) -> Tower:
    """Load the backbone and wrap it with the tower's method (``unipt``, ``lora``, ``frozen``...).

    ``sides``: several tasks on one backbone pass: a UniPT tower gets one side network per name (a
    frozen probe serves every task as it is); other methods train the backbone and cannot be shared.
    """
    backbone = load_tower_backbone(spec)
    prep = backbone.preprocess
    options = dict(spec.options)
    if spec.method in ("unipt", "frozen") and backbone.modality == "image" and "probe_size" not in options:
        options["probe_size"] = getattr(prep, "size", 224)
    if sides and spec.method == "unipt":
        options["side"] = sides[0]
    try:
        module = build_method(spec.method, backbone.model, **options)
    except UnknownOptionError as err:
        raise ConfigError(f"towers.{name}.options.{err.key} is not an option of method {spec.method!r}; "
                          f"{err.hint}") from err
    if sides and not isinstance(module, FrozenTapMethod):
        raise ValueError(f"towers.{name}: method {spec.method!r} changes the backbone, so several tasks cannot "
                         "share its pass; use unipt or frozen towers with several tasks")
    if sides and isinstance(module, UniPTModel):
        for side in sides[1:]:
            module.add_side(side, module.config)
    return Tower(name, spec.field or name, backbone, module)


def build_system(config: RunConfig, towers: dict[str, Tower] | None = None,
                 task_options: dict[str, Any] | None = None) -> AdaptedSystem:
    """Towers from ``config.towers``, the task head(s) from ``config.task`` (or ``config.tasks``); widths
    wired automatically.

    ``task_options`` adds what the data decides (``num_classes``, ``num_answers``; with several tasks,
    ``{task: options}``).
    """
    readers = task_readers(config)
    towers = towers or {name: build_tower(name, spec, readers.get(name)) for name, spec in config.towers.items()}
    if config.tasks:
        heads = {}
        for name, task in config.tasks.items():
            options = {**(task_options or {}).get(name, {}), **task.options}
            if "fusion" in options:
                raise ValueError(f"tasks.{name}: fusion is not available with several tasks yet")
            heads[name] = build_head(task.name, options, {t: towers[t] for t in task.towers or towers})
        weights = {name: task.weight for name, task in config.tasks.items()}
        return AdaptedSystem(towers, MultiTask(heads, weights))
    options = {**(task_options or {}), **config.task.options}
    options.pop("answer_min_count", None)
    fusion = options.pop("fusion", None)
    fusion_width = options.pop("fusion_width", None)
    fusion_layers = int(options.pop("fusion_layers", 1))
    head = build_head(config.task.name, options, towers, fusion, fusion_width)
    return AdaptedSystem(towers, head, fusion, fusion_width, fusion_layers)


def task_readers(config: RunConfig) -> dict[str, list[str]]:
    """With several tasks: ``{tower: [the tasks that read it]}`` (in task order); empty with one task."""
    if not config.tasks:
        return {}
    readers: dict[str, list[str]] = {name: [] for name in config.towers}
    for name, task in config.tasks.items():
        for tower in task.towers or config.towers:
            if tower not in readers:
                raise ValueError(f"tasks.{name}.towers names {tower!r}; the towers are {list(config.towers)}")
            readers[tower].append(name)
    unread = [tower for tower, tasks in readers.items() if not tasks]
    if unread:
        raise ValueError(f"no task reads tower(s) {unread}; drop them or list them in a task's towers")
    return readers


def build_head(name: str, options: dict[str, Any], towers: dict[str, Tower], fusion: dict[str, list[str]] | None = None,
               fusion_width: int | None = None) -> Task:
    """The task head ``name`` with the widths of the streams it reads filled in."""
    widths = {k: _out_width(t) for k, t in towers.items()}
    options = dict(options)
    if name == "retrieval":
        options.setdefault("image_dim", widths.get(options.get("image_tower", "image")))
        options.setdefault("text_dim", widths.get(options.get("text_tower", "text")))
    elif name in ("classification", "vqa", "gqa", "grounding", "mdetr_grounding"):
        tower = options.get("tower") or (next(iter(fusion)) if fusion else next(iter(towers)))
        options.setdefault("tower", tower)
        options.setdefault("hidden_dim", (fusion_width or 256) if fusion else widths[tower])
    task = build_task(name, **options)
    task.init_from_backbones({k: t.backbone.model for k, t in towers.items()})
    head_init = task.head_init if isinstance(task, AnswerPrediction) else None
    if head_init:  # answer-table surgery from a released checkpoint's QA head (CLIP-ViL)
        report = init_head_from_checkpoint(task.head, head_init["checkpoint"], head_init["answer_table"],
                                           task.answers)
        logging.getLogger(__name__).info("answer head: %s", report)
    return task
