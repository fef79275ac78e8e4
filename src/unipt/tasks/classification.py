"""Sequence / image classification: linear or MLP head on pooled features; accuracy and macro-F1."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unipt.outputs import AdaptedOutput
from unipt.tasks.base import Task
from unipt.tasks.features import check_pool_mode, pooled_vector


def macro_f1(pred: torch.Tensor, label: torch.Tensor, num_classes: int | None = None) -> float:
    """Macro-averaged F1 in percent, as ``sklearn.metrics.f1_score(average="macro")``.

    Per class F1 = 2 TP / (2 TP + FP + FN). The average runs over the classes that occur in the
    labels *or* the predictions: a class that is never predicted but present scores 0 (no
    division by zero: FN > 0), a class predicted but absent scores 0 too (FP > 0), and a class in
    neither is left out rather than counted as 0 or 1.

    Args:
        pred: ``[N]`` predicted class ids; label: ``[N]`` true class ids.
        num_classes: number of classes (defaults to ``max id + 1``).
    """
    pred, label = pred.long().flatten(), label.long().flatten()
    if num_classes is None:
        num_classes = int(torch.cat((pred, label)).max()) + 1 if pred.numel() else 0
    confusion = torch.bincount(label * num_classes + pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    tp = confusion.diagonal().double()
    fp = confusion.sum(0).double() - tp  # predicted as the class but wrong
    fn = confusion.sum(1).double() - tp  # of the class but predicted as another
    seen = (tp + fp + fn) > 0
    if not bool(seen.any()):
        return 0.0
    f1 = 2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])
    return 100.0 * float(f1.mean())


class Classification(Task):
    """Classifier on one pooled vector per sample.

    Batch: ``label`` ``[B]`` long. Head: Linear(D, C), or Linear(D, H) -> GELU -> Dropout ->
    Linear(H, C) when ``mlp_hidden`` is set. Loss: cross-entropy with ``label_smoothing``.

    Args:
        hidden_dim: D of the pooled vector.
        num_classes: C.
        mlp_hidden: hidden width H of an MLP head; ``None`` = linear head.
        dropout: dropout before the (last) Linear.
        label_smoothing: passed to :func:`torch.nn.functional.cross_entropy`.
        pooling: :func:`pooled_vector` mode (``"auto"``: ``pooled`` else masked mean).
        tower: name of the stream in ``features``.
    """

    name = "classification"
    primary_metric = "accuracy"

    def __init__(
        self,
        hidden_dim: int,
        num_classes: int,
        mlp_hidden: int | None = None,
        dropout: float = 0.0,
        label_smoothing: float = 0.0,
        pooling: str = "auto",
        tower: str = "text",
    ) -> None:
        super().__init__()
        self.towers = (tower,)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.pooling = check_pool_mode(pooling)
        if mlp_hidden is None:
            self.head: nn.Module = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_dim, num_classes))
        else:
            self.head = nn.Sequential(
                nn.Linear(hidden_dim, mlp_hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(mlp_hidden, num_classes),
            )

    def logits(self, features: dict[str, AdaptedOutput]) -> torch.Tensor:
        """``[B, C]`` class logits."""
        return self.head(pooled_vector(self.stream(features, self.towers[0]), self.pooling))

    def forward(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Returns ``loss`` and ``logits`` ``[B, C]``."""
        logits = self.logits(features)
        label = torch.as_tensor(self.require(batch, "label"), device=logits.device).long()
        loss = F.cross_entropy(logits, label, label_smoothing=self.label_smoothing)
        return {"loss": loss, "logits": logits}

    @torch.no_grad()
    def predict(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``pred`` ``[B]`` argmax class and, when the batch has it, ``label`` ``[B]``."""
        pred = self.logits(features).argmax(dim=1)
        out = {"pred": pred}
        if "label" in batch:
            out["label"] = torch.as_tensor(batch["label"], device=pred.device).long()
        return out

    def metrics(self, gathered: dict[str, torch.Tensor]) -> dict[str, float]:
        """``accuracy`` and ``macro_f1``, both in percent."""
        if "label" not in gathered:
            raise KeyError("classification metrics need `label` in the eval batches")
        pred, label = gathered["pred"], gathered["label"]
        return {
            "accuracy": 100.0 * float((pred == label).double().mean()),
            "macro_f1": macro_f1(pred, label, self.num_classes),
        }
