"""Several tasks trained at once on the features of one backbone pass.

Each task has its own head and reads its own feature streams: a tower with one side network per task
(UniPT) gives ``{task: AdaptedOutput}``, a tower without (a frozen probe) the same features to all. The
loss is the weighted sum of the tasks' losses; metrics are reported per task as ``<task>/<metric>``,
and ``mean_primary`` (the mean of the tasks' primary metrics) selects the best checkpoint.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch
from torch import nn

from unipt.outputs import AdaptedOutput
from unipt.tasks.base import Task

Streams = dict[str, AdaptedOutput | dict[str, AdaptedOutput]]


class MultiTask(Task):
    """``{name: Task}`` with loss weights; ``forward(streams, targets)`` sums the weighted losses.

    Targets: every task reads the batch's targets, with ``label`` replaced by ``<task>/label`` when the
    batch has it (a task whose label is another record field).
    """

    name = "multitask"
    primary_metric = "mean_primary"

    def __init__(self, tasks: dict[str, Task], weights: dict[str, float] | None = None):
        super().__init__()
        if not tasks:
            raise ValueError("MultiTask needs at least one task")
        self.tasks = nn.ModuleDict(tasks)
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in tasks}
        self.towers = tuple(dict.fromkeys(t for task in tasks.values() for t in task.towers))

    def streams_of(self, task: str, streams: Streams) -> dict[str, AdaptedOutput]:
        """The feature streams task ``task`` reads: its own side network's output where a tower has several
        (a tower with one side network, or a frozen probe, gives the same features to every task)."""
        return {name: out[task] if isinstance(out, dict) else out for name, out in streams.items()
                if not isinstance(out, dict) or task in out}

    @staticmethod
    def targets_of(task: str, targets: dict[str, Any]) -> dict[str, Any]:
        own = targets.get(f"{task}/label")
        return targets if own is None else {**targets, "label": own}

    def forward(self, streams: Streams, targets: dict[str, Any]) -> dict[str, torch.Tensor]:
        total, out = 0.0, {}
        for name, task in self.tasks.items():
            result = task(self.streams_of(name, streams), self.targets_of(name, targets))
            total = total + self.weights[name] * result["loss"]
            out[f"{name}/loss"] = result["loss"].detach()
        return {"loss": total, **out}

    @torch.no_grad()
    def predict(self, streams: Streams, targets: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = {}
        for name, task in self.tasks.items():
            predicted = task.predict(self.streams_of(name, streams), self.targets_of(name, targets))
            out.update({f"{name}/{key}": value for key, value in predicted.items()})
        return out

    def metrics(self, gathered: dict[str, torch.Tensor]) -> dict[str, float]:
        out, primaries = {}, []
        for name, task in self.tasks.items():
            own = {k[len(name) + 1:]: v for k, v in gathered.items() if k.startswith(f"{name}/")}
            metrics = task.metrics(own)
            out.update({f"{name}/{key}": value for key, value in metrics.items()})
            primaries.append(metrics[task.primary_metric])
        out["mean_primary"] = statistics.fmean(primaries)
        return out

    def on_epoch_start(self, epoch: int) -> None:
        for task in self.tasks.values():
            task.on_epoch_start(epoch)
