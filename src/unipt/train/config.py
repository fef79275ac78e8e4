"""Run configuration: typed dataclasses loaded from YAML, with ``--set key=value`` overrides.

A run config names the towers (backbone + adaptation method each), the task, the data, the
optimiser and the loop::

    towers:
      image: {backbone: efficientnet-lite0, method: unipt, options: {preset: vse_cnn}}
      text:  {backbone: minilm, method: unipt}
    task: {name: retrieval, options: {embed_dim: 256}}
    # or several tasks on the same records, one backbone pass for all (UniPT / frozen towers):
    # tasks: {category: {name: classification}, subcategory: {name: classification, label_field: subcategory}}
    data: {dataset: tuxpaint, options: {seed: 0}}
    optim: {lr: 5.0e-4, schedule: cosine, warmup_ratio: 0.1}
    train: {epochs: 5, batch_size: 32, output_dir: runs/tux}
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from unipt.train.config_check import check_section, require_mapping


@dataclass
class TowerConfig:
    """One feature stream: which backbone, which method adapts it, and the method's options.

    ``field`` is the record key the tower reads (``image``, ``text``, ``frames``); by default the
    tower's own name; ``"*"`` hands the whole record to the backbone's preprocessing (a single-stream
    encoder such as CLIP-ViL reads the question and the image together). ``backbone_options`` go to the
    backbone loader (e.g. CLIP-ViL's ``visual`` / ``features`` / ``tokenizer``).
    """

    backbone: str
    method: str = "unipt"
    options: dict[str, Any] = field(default_factory=dict)
    backbone_options: dict[str, Any] = field(default_factory=dict)
    field: str | None = None
    max_length: int | None = None
    image_size: int | None = None


@dataclass
class TaskConfig:
    """A task head. With several ``tasks``: ``label_field`` is the record field holding this task's label
    (string labels get a vocabulary from the training split), ``weight`` scales its loss in the sum and
    ``towers`` names the towers it reads (each gets one side network per task that reads it)."""

    name: str = "classification"
    options: dict[str, Any] = field(default_factory=dict)
    label_field: str = "label"
    weight: float = 1.0
    towers: list[str] | None = None  # several tasks: the towers this task reads (default: every tower)


@dataclass
class DataConfig:
    """``dataset`` is a packaged name (``tuxpaint``...) or a format (``karpathy``, ``text_csv``...)."""

    dataset: str = "rotten_tomatoes"
    options: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    eval_split: str = "val"
    test_split: str | None = "test"
    limit_train: int | None = None
    limit_eval: int | None = None


@dataclass
class OptimConfig:
    """AdamW with warm-up, then cosine, linear or step decay (``step_epochs`` x ``step_gamma``)."""

    lr: float = 5e-4
    head_lr: float | None = None
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: Literal["cosine", "linear", "step", "constant"] = "cosine"
    warmup_ratio: float = 0.05
    step_epochs: list[int] = field(default_factory=list)
    step_gamma: float = 0.1
    grad_clip: float | None = 2.0


@dataclass
class LoopConfig:
    """The loop. ``batch_size`` is per process; ``grad_accum_steps`` batches are summed into one optimiser
    step, so the effective batch is ``batch_size x processes x grad_accum_steps`` (CLIP-ViL: 32 x 4 GPUs x 8
    = 1,024). ``max_consecutive_nonfinite``: a step whose loss or gradient norm is NaN/inf is skipped (and
    counted in ``metrics.jsonl``); that many skipped steps in a row stop the run with an error."""

    epochs: int = 3
    batch_size: int = 32
    grad_accum_steps: int = 1
    eval_batch_size: int | None = None
    max_steps_per_epoch: int | None = None
    bf16: bool = False
    seed: int = 0
    output_dir: str = "runs/unipt"
    num_workers: int = 0
    eval_every: int = 1
    resume: bool = True
    cache_dir: str | None = None
    # Experiment trackers through Accelerate: tensorboard (offline, in the run folder), wandb, mlflow, aim.
    report_to: list[str] = field(default_factory=list)
    max_consecutive_nonfinite: int = 5
    ema_decay: float | None = None  # evaluate an EMA of the trained weights (MDETR: 0.9998)

    def __post_init__(self) -> None:
        if int(self.grad_accum_steps) < 1:
            raise ValueError(f"train.grad_accum_steps must be >= 1, got {self.grad_accum_steps}")


@dataclass
class RunConfig:
    towers: dict[str, TowerConfig]
    task: TaskConfig = field(default_factory=TaskConfig)
    tasks: dict[str, TaskConfig] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: LoopConfig = field(default_factory=LoopConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = require_mapping(data, "(top level)", "towers: {text: {backbone: minilm}}")
        _reject_unknown(cls, data, "")
        if "towers" not in data or not data["towers"]:
            raise ValueError("run config needs 'towers': e.g. {text: {backbone: minilm, method: unipt}}")
        towers = {}
        example = "{backbone: minilm, method: unipt}"
        for name, tower in require_mapping(data.pop("towers"), "towers", "{text: " + example + "}").items():
            tower = {"backbone": tower} if isinstance(tower, str) else require_mapping(tower, f"towers.{name}", example)
            _reject_unknown(TowerConfig, tower, f"towers.{name}.")
            if "backbone" not in tower:
                raise ValueError(f"towers.{name} needs a backbone, e.g. towers.{name}.backbone=minilm")
            towers[name] = TowerConfig(**check_section(TowerConfig, tower, f"towers.{name}."))
        if data.get("tasks") and data.get("task") and TaskConfig(**data["task"]) != TaskConfig():
            raise ValueError("give either 'task' (one task) or 'tasks' (several, by name), not both")
        tasks = {}
        example = "{name: classification, label_field: topic}"
        for name, task in require_mapping(data.pop("tasks", None) or {}, "tasks", "{topic: " + example + "}").items():
            task = {"name": task} if isinstance(task, str) else require_mapping(task, f"tasks.{name}", example)
            _reject_unknown(TaskConfig, task, f"tasks.{name}.")
            tasks[str(name)] = TaskConfig(**check_section(TaskConfig, task, f"tasks.{name}."))
        sections = {"task": TaskConfig, "data": DataConfig, "optim": OptimConfig, "train": LoopConfig}
        built = {}
        for key, klass in sections.items():
            values = require_mapping(data.get(key), key, f"{key}: {{...}}")
            _reject_unknown(klass, values, f"{key}.")
            built[key] = klass(**check_section(klass, values, f"{key}."))
        return cls(towers=towers, tasks=tasks, **built)


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None,
                    base: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config (or start from ``base``) and apply ``key.sub=value`` overrides."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"run config {file} not found (example configs live in configs/)")
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{file} is not valid YAML: {err}") from err
    for item in overrides or []:
        apply_override(data, item)
    return RunConfig.from_dict(data)


def apply_override(data: dict[str, Any], item: str) -> None:
    """``train.epochs=3`` -> ``data["train"]["epochs"] = 3`` (value parsed as YAML)."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key.sub=value, e.g. train.epochs=3")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {item!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def _reject_unknown(klass: type, values: dict[str, Any], prefix: str) -> None:
    known = {f.name for f in dataclasses.fields(klass)}
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=2)
            hint = f"; did you mean {[prefix + c for c in close]}?" if close else f"; known: {sorted(known)}"
            raise ValueError(f"unknown run config key {prefix + key!r}{hint}")
