"""Visual question answering as answer classification (CLIP-ViL / LXMERT head), VQAv2 and GQA modes."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unipt.outputs import AdaptedOutput
from unipt.tasks.base import Task
from unipt.tasks.features import check_pool_mode, pooled_vector

MODES = ("vqa", "gqa")


class AnswerHead(nn.Sequential):
    """LXMERT's ``logit_fc``: ``[B, D]`` -> Linear(D, 2D), GELU, LayerNorm, Linear(2D, A) -> ``[B, A]``."""

    def __init__(self, hidden_dim: int, num_answers: int) -> None:
        super().__init__(
            nn.Linear(hidden_dim, 2 * hidden_dim),
            nn.GELU(),
            nn.LayerNorm(2 * hidden_dim, eps=1e-12),  # BERT's LayerNorm eps, as in LXMERT
            nn.Linear(2 * hidden_dim, num_answers),
        )


def vqa_soft_scores(human_counts: torch.Tensor) -> torch.Tensor:
    """VQA answer scores ``min(#humans who gave the answer / 3, 1)`` from counts ``[B, A]``."""
    return (human_counts.float() / 3.0).clamp(max=1.0)


class AnswerPrediction(Task):
    """Answer classifier over the pooled joint sequence of a single-stream V&L encoder.

    Modes differ only in their targets and accuracy:

    * ``"vqa"`` reads ``batch["answer_scores"]`` ``[B, A]`` (soft scores, see
      :func:`vqa_soft_scores`); accuracy = mean soft score of the argmax answer.
    * ``"gqa"`` reads ``batch["label"]`` ``[B]`` (one answer id; the BCE target is its one-hot, as
      in LXMERT's GQA); accuracy = exact match of the argmax. ``answer_scores`` is used instead
      when the batch has it.

    Loss: ``BCEWithLogits`` averaged over all ``B x A`` entries, times ``loss_scale``. CLIP-ViL
    (UniPT scripts, VQA and GQA) uses ``--loss_scale 500``, i.e. ``500 * mean``; with ``loss_scale=None``
    the scale is ``A`` (the released default when no scale is given, as CLIP-ViL's own VQA fine-tuning
    runs: a sum over answers, mean over the batch).

    Args:
        hidden_dim: D of the pooled vector.
        num_answers: A (3,129 for VQAv2 and 1,842 for GQA with LXMERT's answer tables).
        mode: ``"vqa"`` or ``"gqa"``.
        loss_scale: multiplier of the mean BCE (default 1); ``None`` means ``num_answers``.
        pooling: how the vector is read (:func:`pooled_vector`); ``"auto"`` = ``pooled`` (e.g. the
            frozen BertPooler on token 0) when present, else the masked mean.
        tower: name of the joint stream in ``features``.
        answers: the answer of each head row (the data fills it in); needed by ``head_init``.
        head_init: ``{"checkpoint": <released file>, "answer_table": <its answers>}``: initialise the head by
            answer-table surgery from the file's pre-trained QA head (CLIP-ViL / LXMERT ``--loadLXMERTQA``);
            see :mod:`unipt.models.clipvil.answers` (done when the system is built: the head stays file-format free).
    """

    primary_metric = "accuracy"

    def __init__(
        self,
        hidden_dim: int,
        num_answers: int,
        mode: str = "vqa",
        loss_scale: float | None = 1.0,
        pooling: str = "auto",
        tower: str = "joint",
        answers: list[str] | None = None,
        head_init: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown answer mode {mode!r}; expected one of {MODES}")
        self.name = mode
        self.mode = mode
        self.towers = (tower,)
        self.num_answers = num_answers
        self.loss_scale = float(num_answers) if loss_scale is None else loss_scale
        self.pooling = check_pool_mode(pooling)
        self.head = AnswerHead(hidden_dim, num_answers)
        if answers is not None and len(answers) != num_answers:
            raise ValueError(f"{len(answers)} answers for num_answers={num_answers}")
        self.answers = list(answers) if answers is not None else None
        if head_init and self.answers is None:
            raise ValueError("head_init needs the answers of the head's rows (the trainer passes them from the data)")
        # The surgery itself reads a released checkpoint: the system builder does it
        # (unipt.train.system.build_head), so heads never import a model's file formats.
        self.head_init = dict(head_init) if head_init else None

    def logits(self, features: dict[str, AdaptedOutput]) -> torch.Tensor:
        """``[B, A]`` answer logits."""
        return self.head(pooled_vector(self.stream(features, self.towers[0]), self.pooling))

    def targets(self, batch: dict[str, Any], like: torch.Tensor) -> torch.Tensor:
        """``[B, A]`` soft targets: ``answer_scores`` if present, else the one-hot of ``label``."""
        if "answer_scores" in batch:
            return torch.as_tensor(batch["answer_scores"], device=like.device, dtype=like.dtype)
        if self.mode == "vqa":
            self.require(batch, "answer_scores")
        label = torch.as_tensor(self.require(batch, "label"), device=like.device)
        return F.one_hot(label.long(), self.num_answers).to(like.dtype)

    def forward(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Returns ``loss`` and ``logits`` ``[B, A]``."""
        logits = self.logits(features)
        loss = F.binary_cross_entropy_with_logits(logits, self.targets(batch, logits)) * self.loss_scale
        return {"loss": loss, "logits": logits}

    @torch.no_grad()
    def predict(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``answer`` ``[B]`` (argmax id) and, when targets are in the batch, ``score`` ``[B]``.

        ``score`` is the soft score of the predicted answer (VQA) or 1/0 for an exact match (GQA),
        so the eval set's accuracy is just its mean; no ``[N, A]`` logits need to be kept.
        """
        logits = self.logits(features)
        answer = logits.argmax(dim=1)
        out = {"answer": answer}
        if self.mode == "gqa" and "label" in batch:
            label = torch.as_tensor(batch["label"], device=answer.device)
            out["score"] = (answer == label).float()
        elif "answer_scores" in batch:
            out["score"] = self.targets(batch, logits).gather(1, answer.unsqueeze(1)).squeeze(1)
        return out

    def metrics(self, gathered: dict[str, torch.Tensor]) -> dict[str, float]:
        """``accuracy`` in percent (VQA soft accuracy or GQA exact match)."""
        if "score" not in gathered:
            raise KeyError(f"task {self.name!r} needs targets in the eval batches to compute accuracy")
        return {"accuracy": 100.0 * float(gathered["score"].double().mean())}
