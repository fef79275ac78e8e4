"""Experiment trackers through Accelerate: a run logs to TensorBoard offline, read back from the event file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cache import tiny  # tests/ is on sys.path (rootdir of the test packages)
from unipt.train import Trainer
from unipt.train.tracking import check_trackers, flatten

pytest.importorskip("tensorboard")


def scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the event files directly inside ``logdir``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_logs_losses_lr_step_time_memory_metrics_and_config(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tiny.config(data_root, out, **{"train.report_to": ["tensorboard"], "train.max_steps_per_epoch": 3})
    result = Trainer(config).fit()
    logged = scalars(out / "tensorboard")

    losses = [loss for record in result.history for loss in record["losses"]]
    assert len(losses) == 6  # 2 epochs x 3 steps
    assert [step for step, _ in logged["train/loss"]] == list(range(1, 7))
    assert [value for _, value in logged["train/loss"]] == pytest.approx(losses, rel=1e-6)
    assert len(logged["train/lr"]) == 6 and logged["train/lr"][-1][1] == pytest.approx(result.history[-1]["lr"])
    assert all(value > 0 for _, value in logged["train/step_time_ms"] + logged["train/peak_memory_mb"])
    for record in result.history:  # per-epoch metrics at the epoch's last step
        step = 3 * record["epoch"]
        assert (step, pytest.approx(record["train_loss"], rel=1e-6)) in logged["train/epoch_loss"]
        for name, value in record["eval"].items():
            assert (step, pytest.approx(value, rel=1e-6)) in logged[f"eval/{name}"]
    assert logged["test/accuracy"] == [(6, pytest.approx(result.test_metrics["accuracy"], rel=1e-6))]
    assert logged["summary/trainable_parameters"][0][1] == result.trainable_parameters

    # the run config, flattened, as hyper-parameters (Accelerate also writes them to hparams.yml)
    import yaml

    stored = [yaml.safe_load(p.read_text()) for p in (out / "tensorboard").rglob("hparams.yml")]
    assert len(stored) == 1
    assert stored[0]["optim.lr"] == pytest.approx(0.01) and stored[0]["towers.text.backbone"] == tiny.NAME
    assert stored[0]["model.trainable_parameters"] == result.trainable_parameters


def test_unknown_or_missing_trackers_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"unknown tracker 'tensorbord'.*tensorboard"):
        check_trackers(["tensorbord"])
    assert check_trackers(["TensorBoard", "tensorboard"]) == ["tensorboard"]
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ValueError, match=r"pip install 'unipt\[wandb\]'"):
            check_trackers(["wandb"])


def test_flatten_gives_scalar_hyperparameters() -> None:
    flat = flatten({"optim": {"lr": 1e-3, "betas": (0.9, 0.99), "head_lr": None}, "towers": {"text": {"options": {}}}})
    assert flat == {"optim.lr": 1e-3, "optim.betas": "(0.9, 0.99)", "optim.head_lr": "None",
                    "towers.text.options": "{}"}
