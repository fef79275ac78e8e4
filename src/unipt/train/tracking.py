"""Experiment trackers through Accelerate: TensorBoard, Weights & Biases, MLflow, Aim.

``train.report_to: [tensorboard]`` (or ``unipt train --report-to tensorboard``) makes a run log,
through Accelerate's tracker classes and ``Accelerator.log``:

* every step: ``train/loss``, ``train/lr`` (and ``train/lr_group_<i>`` when parameter groups differ),
  ``train/step_time_ms`` and ``train/peak_memory_mb`` (CUDA allocator peak, else the process's peak RSS);
* every epoch: ``train/epoch_loss`` and ``eval/<metric>`` for each metric of the task;
* at the end: ``test/<metric>`` and ``summary/*`` (median step time, peak memory, parameters, time);
* once, at the start: the whole run config, flattened (``optim.lr``, ``towers.text.backbone``, ...),
  plus the trainable / total parameter counts.

Where they go: TensorBoard event files in ``<output_dir>/tensorboard`` (works offline:
``tensorboard --logdir runs/``); W&B project ``unipt`` with the run folder's name; MLflow experiment
``unipt`` (``$MLFLOW_TRACKING_URI``, else ``<output_dir>/mlruns``); Aim repo ``$AIM_REPO``, else the
run folder. Only the main process logs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

PROJECT = "unipt"
# tracker name -> (module that must be importable, the pip extra that installs it)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "unipt[tensorboard]"),
    "wandb": ("wandb", "unipt[wandb]"),
    "mlflow": ("mlflow", "unipt[mlflow]"),
    "aim": ("aim", "unipt[aim]"),
}


def check_trackers(names: list[str]) -> list[str]:
    """The names, de-duplicated; an unknown or uninstalled tracker raises with what to do instead."""
    unique = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    for name in unique:
        if name not in TRACKERS:
            raise ValueError(f"train.report_to: unknown tracker {name!r}; use any of {sorted(TRACKERS)}")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"train.report_to: {name} is not installed; pip install '{extra}' "
                             f"(or drop it from train.report_to)")
    return unique


def make_tracker(name: str, out: Path) -> Any:
    """An Accelerate tracker object for ``name`` that logs the run in ``out``."""
    from accelerate import tracking

    run_name = out.resolve().name
    if name == "tensorboard":
        return tracking.TensorBoardTracker("tensorboard", str(out))
    if name == "wandb":
        return tracking.WandBTracker(PROJECT, name=run_name, dir=str(out))
    if name == "mlflow":
        return tracking.MLflowTracker(PROJECT, logging_dir=str(out / "mlruns"), run_name=run_name)
    if name == "aim":
        return tracking.AimTracker(run_name, logging_dir=os.environ.get("AIM_REPO", str(out)))
    raise ValueError(f"unknown tracker {name!r}")


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Nested config -> ``{"optim.lr": 0.001, ...}`` with scalar values (lists and None as text), the form
    every tracker accepts as hyper-parameters."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


class RunTracker:
    """The trackers of one run. Every method does nothing when ``report_to`` is empty or on a
    non-main process, so the training loop calls them unconditionally."""

    def __init__(self, report_to: list[str], out: Path, main: bool):
        self.names = check_trackers(report_to)
        self.out = out
        self.active = bool(self.names) and main
        self.accelerator: Any = None

    def start(self, accelerator: Any, config: dict[str, Any], parameters: tuple[int, int]) -> None:
        """Register the trackers on ``accelerator`` and store the run config (once per run)."""
        if not self.active:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.accelerator = accelerator
        accelerator.log_with = [make_tracker(n, self.out) for n in self.names]  # init_trackers starts these
        values = flatten(config)
        values["model.trainable_parameters"], values["model.total_parameters"] = parameters
        accelerator.init_trackers(PROJECT, config=values)

    def log_step(self, step: int, loss: float, lrs: list[float], step_ms: float, peak_mb: float) -> None:
        if not self.active:
            return
        values = {"train/loss": loss, "train/lr": lrs[0], "train/step_time_ms": step_ms,
                  "train/peak_memory_mb": peak_mb}
        if len(set(lrs)) > 1:
            values.update({f"train/lr_group_{i}": lr for i, lr in enumerate(lrs)})
        self.accelerator.log(values, step=step)

    def log_epoch(self, step: int, record: dict[str, Any]) -> None:
        if not self.active:
            return
        values = {"train/epoch": record["epoch"]}
        if record.get("train_loss") is not None:
            values["train/epoch_loss"] = record["train_loss"]
        values.update({f"eval/{k}": v for k, v in (record.get("eval") or {}).items()})
        self.accelerator.log(values, step=step)

    def finish(self, step: int, summary: dict[str, Any]) -> None:
        """Log the test metrics and the run's summary, then close every tracker."""
        if not self.active:
            return
        values = {f"test/{k}": v for k, v in (summary.get("test_metrics") or {}).items()}
        values.update({f"summary/{k}": v for k, v in summary.items() if isinstance(v, int | float)})
        self.accelerator.log(values, step=step)
        for tracker in self.accelerator.trackers:
            tracker.finish()
        self.accelerator.trackers = []
        self.active = False
