"""The training step of a real run config, on a real batch: what the suites measure cost with.

The accuracy runs train an :class:`~unipt.train.system.AdaptedSystem` (towers + the task's own head and
loss) with the :class:`~unipt.train.Trainer`. To measure the *same* thing, the cost side rebuilds that
system from the same run config, collates the first ``batch_size`` training records into one fixed
batch, and runs ``loss -> backward -> AdamW step`` (the Trainer's optimiser groups and learning rates).
The physical reference is a fresh copy of the towers' backbones running that batch under
``torch.inference_mode()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from unipt.batch import Batch, move
from unipt.bench.accounting import tensor_bytes
from unipt.taps.auto import call_backbone
from unipt.train.batching import Collator
from unipt.train.config import RunConfig
from unipt.train.data import load_run_data
from unipt.train.optim import build_optimizer
from unipt.train.step import training_step
from unipt.train.system import build_system, load_tower_backbone


class SystemStep:
    """One optimiser step of ``system(batch)["loss"]``; same calling convention as ``TrainingStep``.

    ``model`` is the whole system (towers, fusion and task head), so :func:`unipt.bench.run.account_step`
    counts everything a real training step saves, holds as gradients and keeps as AdamW state.
    """

    head: nn.Module | None = None  # the task head lives inside the system

    def __init__(self, name: str, system: nn.Module, batch: Batch, optimizer: torch.optim.Optimizer):
        self.name = name
        self.model = system
        self.batch = batch
        self.optimizer = optimizer

    def loss(self) -> torch.Tensor:
        """Forward + the task's loss (scalar)."""
        return self.model(self.batch)["loss"]

    def __call__(self, forward_context: AbstractContextManager[Any] | None = None) -> float:
        return float(training_step(self.loss, self.optimizer, forward_context=forward_context).loss)


def first_records(dataset: Any, count: int) -> list[dict[str, Any]]:
    """The first ``count`` records of a dataset (images decoded): the fixed batch every method gets."""
    if len(dataset) == 0:
        raise ValueError("the training split is empty")
    return [dataset[i % len(dataset)] for i in range(count)]


def load_batch_records(config_data: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The run's first training batch (records) and the task options its data implies (``num_classes``)."""
    config = RunConfig.from_dict(dict(config_data))
    data = load_run_data(config)
    return first_records(data.train, config.train.batch_size), dict(data.task_options)


def build_system_step(
    config_data: Mapping[str, Any],
    name: str,
    *,
    records: list[dict[str, Any]] | None = None,
    task_options: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> SystemStep:
    """Build the run config's system, its fixed first batch and the Trainer's AdamW, seeded, on ``device``.

    Pass ``records``/``task_options`` (from :func:`load_batch_records`) to avoid reloading the data for
    every method.
    """
    from accelerate.utils import set_seed

    config = RunConfig.from_dict(dict(config_data))
    if records is None:
        records, task_options = load_batch_records(config_data)
    set_seed(config.train.seed)
    system = build_system(config, task_options=dict(task_options or {})).to(device)
    system.train()
    batch = Collator(system.tower_info)(records).to(device)
    return SystemStep(name, system, batch, build_optimizer(system, config.optim))


class ReferenceForward:
    """Fresh copies of the run's backbones, running the fixed batch under ``torch.inference_mode()``.

    Calling it runs every tower's backbone once (a dual encoder runs both); ``parameter_bytes`` is the
    size of their weights (what an inference-only process must hold).
    """

    def __init__(self, config_data: Mapping[str, Any], records: list[dict[str, Any]],
                 device: str | torch.device = "cpu") -> None:
        config = RunConfig.from_dict(dict(config_data))
        towers = {}
        for tower, spec in config.towers.items():
            backbone = load_tower_backbone(spec)
            backbone.model.to(device).eval().requires_grad_(False)
            towers[tower] = (spec.field or tower, backbone)
        self.backbones = {name: backbone.model for name, (_, backbone) in towers.items()}
        inputs = Collator(towers).tower_inputs(records)
        self.inputs = {name: move(tower.inputs, device) for name, tower in inputs.items()}

    @property
    def parameter_bytes(self) -> int:
        return tensor_bytes(p for m in self.backbones.values() for p in m.parameters())

    def __call__(self) -> None:
        with torch.inference_mode():
            for name, model in self.backbones.items():
                call_backbone(model, self.inputs[name])

