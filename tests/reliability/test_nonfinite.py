"""Silent failure 2: a non-finite loss / gradient skips the step (counted), N in a row stop the run, and
no checkpoint with NaN weights is ever written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import Subset

from unipt.errors import NonFiniteEvaluationError, NonFiniteTrainingError
from unipt.train import Trainer
from unipt.train.checkpoint import checkpoint_state

from . import helpers


def poisoned_run(tmp_path: Path, train_rows: list[tuple[str, str]], **train: object) -> Trainer:
    options = helpers.write_text_splits(tmp_path / "data", {"train": train_rows, "val": helpers.sentiment_rows(4)})
    data = helpers.text_config(options, tmp_path / "run", backbone=helpers.POISONED, test_split=None, **train)
    return Trainer(helpers.run_config(data))


def test_a_non_finite_batch_is_skipped_counted_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = helpers.sentiment_rows(8)
    rows[5] = (f"a {helpers.POISON_WORD} film", "pos")  # one corrupted record
    trainer = poisoned_run(tmp_path, rows, epochs=2, batch_size=2, max_consecutive_nonfinite=3)
    result = trainer.fit()

    # exactly one of the four batches of each epoch holds the record
    assert [h["skipped_steps"] for h in result.history] == [1, 1]
    assert all(len(h["losses"]) == 3 for h in result.history)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["skipped_steps"] for line in logged] == [1, 1]
    err = capsys.readouterr().err
    assert "non-finite" in err and "step skipped" in err and f"#5 ('a {helpers.POISON_WORD} film')" in err
    for tag in ("last", "best"):
        weights = checkpoint_state(tmp_path / "run" / "checkpoints" / tag)
        assert all(torch.isfinite(w).all() for w in weights.values()), tag


def test_consecutive_non_finite_steps_stop_the_run_naming_the_records(tmp_path: Path) -> None:
    rows = [(f"{text} {helpers.POISON_WORD}", label) for text, label in helpers.sentiment_rows(8)]
    trainer = poisoned_run(tmp_path, rows, epochs=2, batch_size=2, max_consecutive_nonfinite=2)
    with pytest.raises(NonFiniteTrainingError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert message.startswith("stopped at epoch 1 step 2: 2 training steps in a row had a non-finite loss")
    assert helpers.POISON_WORD in message and "max_consecutive_nonfinite" in message
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing non-finite was saved
    side = trainer.system.towers["text"].side
    assert all(torch.isfinite(p).all() for p in side.parameters())  # no step was taken


def test_a_checkpoint_with_non_finite_weights_is_never_written(tmp_path: Path) -> None:
    trainer = poisoned_run(tmp_path, helpers.sentiment_rows(8), epochs=1)
    trainer.fit()
    before = checkpoint_state(tmp_path / "run" / "checkpoints" / "last")
    with torch.no_grad():
        next(trainer.system.towers["text"].side.parameters()).fill_(float("nan"))
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer)
    with pytest.raises(NonFiniteTrainingError, match="not saving checkpoint 'last'.*hold NaN/inf"):
        trainer._save("last", optimizer, scheduler, 2, None, [])
    after = checkpoint_state(tmp_path / "run" / "checkpoints" / "last")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_non_finite_predictions_in_evaluation_name_the_records(tmp_path: Path) -> None:
    """A NaN in the evaluation data gives a clear error naming the record, not a NaN metric."""
    val = helpers.sentiment_rows(4)
    val[2] = (f"a {helpers.POISON_WORD} film", "pos")
    options = helpers.write_text_splits(tmp_path / "data", {"train": helpers.sentiment_rows(8), "val": val})
    data = helpers.text_config(options, tmp_path / "run", backbone=helpers.POISONED, test_split=None)
    trainer = Trainer(helpers.run_config(data))
    with pytest.raises(NonFiniteEvaluationError) as caught:
        trainer.evaluate(trainer.data.eval)
    message = str(caught.value)
    assert "evaluation on the eval split: 1 record(s) give NaN/inf features" in message
    assert f"#2 ('a {helpers.POISON_WORD} film')" in message
    assert trainer.evaluate(Subset(trainer.data.eval, [0, 1, 3]))["accuracy"] >= 0  # the clean records still score
