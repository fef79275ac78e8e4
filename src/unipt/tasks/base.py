"""The task interface (head + loss + metric); tasks by name: :mod:`unipt.tasks.registry`.

A task turns the adapted feature streams of one or more towers into a loss for training, into
per-sample tensors for evaluation, and those tensors (gathered over a whole eval set) into
metrics. Tasks never import a backbone: their only input is :class:`~unipt.outputs.AdaptedOutput`.

The trainer's contract with a task::

    out = task(features, batch)            # training: out["loss"] is a scalar
    part = task.predict(features, batch)   # eval: dict of per-sample tensors, first dim = batch
    gathered = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    scores = task.metrics(gathered)        # dict of floats; scores[task.primary_metric] is maximised
    task.on_epoch_start(epoch)             # lets a task change its loss per epoch (VSE++ hardest negatives)
    task.init_from_backbones(models)       # once, at build time: a head may start from a backbone's own head
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unipt.outputs import AdaptedOutput


class Task(nn.Module):
    """Base class of every task head.

    Subclasses set :attr:`name`, :attr:`towers` and :attr:`primary_metric` (class or instance
    attributes) and implement :meth:`forward`, :meth:`predict` and :meth:`metrics`.

    Attributes:
        name: registry name of the task, e.g. ``"retrieval"``.
        towers: the feature streams the task reads from ``features``, e.g. ``("image", "text")``.
        primary_metric: key of :meth:`metrics` used for best-checkpoint selection (higher is better).
    """

    name: str = "task"
    towers: tuple[str, ...] = ()
    primary_metric: str = ""

    def forward(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Training step: returns at least ``"loss"`` (a scalar) plus task-specific tensors."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Per-sample tensors (first dim = batch) to concatenate over an eval set."""
        raise NotImplementedError

    def metrics(self, gathered: dict[str, torch.Tensor]) -> dict[str, float]:
        """Metrics over a whole eval set from the concatenated outputs of :meth:`predict`."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        """Hook the trainer calls at the start of every epoch (0-based); no-op by default."""

    def loss_weight(self, epoch: int, step: int, steps: int) -> float:
        """Factor the trainer applies to the loss of batch ``step`` (0-based) of ``steps`` in ``epoch``;
        1 by default (VSE-infinity ramps one epoch's loss up linearly)."""
        return 1.0

    def init_from_backbones(self, backbones: dict[str, nn.Module]) -> None:
        """Hook the system builder calls once with ``{tower: backbone module}``, so a head can start from
        a pre-trained head of its backbone (MDETR's box and token heads); no-op by default."""

    def stream(self, features: dict[str, AdaptedOutput], tower: str) -> AdaptedOutput:
        """Return ``features[tower]`` with an error that names what is available when it is missing."""
        try:
            return features[tower]
        except KeyError:
            raise KeyError(
                f"task {self.name!r} needs the feature stream {tower!r}; got {sorted(features)}"
            ) from None

    def require(self, batch: dict[str, Any], key: str) -> Any:
        """Return ``batch[key]`` with an error that names the task when it is missing."""
        try:
            return batch[key]
        except KeyError:
            raise KeyError(f"task {self.name!r} needs batch[{key!r}]; batch has {sorted(batch)}") from None
