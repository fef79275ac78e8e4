"""Image-text retrieval (VSE∞): GPO pooling, L2-normalised joint embeddings, hinge or InfoNCE loss."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unipt.outputs import AdaptedOutput
from unipt.tasks.base import Task
from unipt.tasks.contrastive import hinge_triplet_loss, info_nce_loss, positive_mask
from unipt.tasks.features import POOL_MODES, pooled_vector, token_mask
from unipt.tasks.gpo import GPO
from unipt.tasks.ranking import fold_averaged_metrics, retrieval_metrics_from_samples

LOSSES = ("triplet", "infonce")


def random_token_drop(mask: torch.Tensor, p: float) -> torch.Tensor:
    """Drop each real token of ``mask`` ``[B, L]`` with probability ``p``; a row never loses all.

    VSE∞ drops 20% of the image grid cells while training, as augmentation; GPO ignores the order
    of tokens, so masking them is the same as removing them.
    """
    keep = mask & (torch.rand(mask.shape, device=mask.device) >= p)
    empty = ~keep.any(dim=1, keepdim=True)
    return torch.where(empty, mask, keep)


class ImageTextRetrieval(Task):
    """Two-tower retrieval head for the ``image`` and ``text`` streams.

    Each tower: tokens ``[B, L, D_t]`` -> optional Linear to ``embed_dim`` -> pooling -> L2 norm.
    Training reads ``batch["image_index"]`` (optional ``[B]`` long): the id of each sample's
    image, so captions of the same image in one batch are not treated as negatives.

    Args:
        image_dim: width of the image stream (needed only when it is projected).
        text_dim: width of the text stream (needed only when it is projected).
        embed_dim: joint width; defaults to ``max(image_dim, text_dim)``.
        project: ``None`` projects a tower only when its width differs from ``embed_dim``;
            ``True`` projects both (e.g. a frozen linear-probe baseline); ``False`` never.
        pooling: ``"gpo"`` (VSE∞, one GPO per tower) or a :func:`pooled_vector` mode
            (``"auto"``, ``"pooled"``, ``"first"``, ``"mean"``).
        loss: ``"triplet"`` (VSE hinge, summed over the batch) or ``"infonce"`` (symmetric, mean).
        margin: hinge margin.
        max_violation: hardest negative only (VSE++); the trainer may flip it any time.
        hard_negatives_from_epoch: when not ``None``, :meth:`on_epoch_start` sets
            ``max_violation = epoch >= hard_negatives_from_epoch`` (VSE∞: sum over all negatives in
            epoch 0, hardest from epoch 1).
        loss_warmup_epoch: the epoch (0-based) whose loss is scaled by a linear ramp ``i / (iters + 1)``
            over its batches ``i = 0 .. iters-1`` (VSE∞ as released: epoch 1, the first with hardest
            negatives, ``i / (len(dataset) // batch + 1)``); ``None``: no ramp.
        eval_folds: also report every metric averaged over this many equal folds of the eval items
            (COCO's 5-fold 1K beside the 5K test: ``eval_folds=5``), keys ``"{n}fold_<metric>"``.
        temperature: InfoNCE temperature (scale = 1 / temperature).
        learn_temperature: learn ``log(1 / temperature)`` (clamped to scale <= 100 like CLIP).
        image_token_drop: training-time token drop on the image tower (VSE∞: 0.2).
        image_tower / text_tower: names of the two streams in ``features``.
        d_pe / d_hidden: GPO sizes.
    """

    name = "retrieval"
    primary_metric = "rsum"

    def __init__(
        self,
        image_dim: int | None = None,
        text_dim: int | None = None,
        embed_dim: int | None = None,
        project: bool | None = None,
        pooling: str = "gpo",
        loss: str = "triplet",
        margin: float = 0.2,
        max_violation: bool = False,
        hard_negatives_from_epoch: int | None = 1,
        temperature: float = 0.05,
        learn_temperature: bool = False,
        image_token_drop: float = 0.0,
        image_tower: str = "image",
        text_tower: str = "text",
        d_pe: int = 32,
        d_hidden: int = 32,
        loss_warmup_epoch: int | None = None,
        eval_folds: int | None = None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown retrieval loss {loss!r}; expected one of {LOSSES}")
        if pooling != "gpo" and pooling not in POOL_MODES:
            raise ValueError(f"unknown pooling {pooling!r}; expected 'gpo' or one of {POOL_MODES}")
        self.towers = (image_tower, text_tower)
        self.pooling = pooling
        self.loss_name = loss
        self.margin = margin
        self.max_violation = max_violation
        self.hard_negatives_from_epoch = hard_negatives_from_epoch
        self.image_token_drop = image_token_drop
        self.loss_warmup_epoch = loss_warmup_epoch
        if eval_folds is not None and eval_folds < 2:
            raise ValueError(f"eval_folds must be >= 2 (COCO: 5), got {eval_folds}")
        self.eval_folds = eval_folds

        widths = {image_tower: image_dim, text_tower: text_dim}
        known = [w for w in widths.values() if w is not None]
        self.embed_dim = embed_dim if embed_dim is not None else (max(known) if known else None)
        self.projections = nn.ModuleDict()
        for tower, width in widths.items():
            if project is False:
                continue
            if width is None:
                if project:
                    raise ValueError(f"project=True needs the width of tower {tower!r}")
                continue
            if project or width != self.embed_dim:
                self.projections[tower] = nn.Linear(width, self.embed_dim)
        self.poolers = nn.ModuleDict(
            {t: GPO(d_pe, d_hidden) for t in self.towers} if pooling == "gpo" else {}
        )

        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def on_epoch_start(self, epoch: int) -> None:
        """Switch to hardest negatives from ``hard_negatives_from_epoch`` on (if set)."""
        if self.hard_negatives_from_epoch is not None:
            self.max_violation = epoch >= self.hard_negatives_from_epoch

    def loss_weight(self, epoch: int, step: int, steps: int) -> float:
        """``step / (steps + 1)`` during ``loss_warmup_epoch``, else 1 (VSE∞'s ramp into hardest negatives)."""
        if self.loss_warmup_epoch is None or epoch != self.loss_warmup_epoch:
            return 1.0
        return step / (steps + 1)

    def embed(self, tower: str, out: AdaptedOutput) -> torch.Tensor:
        """``[B, E]`` L2-normalised embedding of one tower's adapted features."""
        proj = self.projections[tower] if tower in self.projections else nn.Identity()
        if self.pooling == "gpo":
            mask = token_mask(out)
            if self.training and tower == self.towers[0] and self.image_token_drop > 0:
                mask = random_token_drop(mask, self.image_token_drop)
            pooled = self.poolers[tower](proj(out.last_hidden_state), mask)
        else:
            pooled = proj(pooled_vector(out, self.pooling))
        return F.normalize(pooled, dim=-1)

    def _embed_both(self, features: dict[str, AdaptedOutput]) -> tuple[torch.Tensor, torch.Tensor]:
        image_tower, text_tower = self.towers
        image = self.embed(image_tower, self.stream(features, image_tower))
        text = self.embed(text_tower, self.stream(features, text_tower))
        return image, text

    def logit_scale(self) -> torch.Tensor:
        """InfoNCE inverse temperature, capped at 100 as CLIP does to keep training stable."""
        return self.log_scale.exp().clamp(max=100.0)

    def forward(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Returns ``loss``, ``sim`` ``[B, B]`` (rows images), ``image_emb`` and ``text_emb`` ``[B, E]``."""
        image, text = self._embed_both(features)
        sim = image @ text.t()
        positives = positive_mask(batch.get("image_index"), sim.shape[0], sim.device)
        if self.loss_name == "triplet":
            loss = hinge_triplet_loss(sim, positives, self.margin, self.max_violation)
        else:
            loss = info_nce_loss(sim, self.logit_scale(), positives)
        return {"loss": loss, "sim": sim, "image_emb": image, "text_emb": text}

    @torch.no_grad()
    def predict(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``image_emb`` / ``text_emb`` ``[B, E]`` and, when the batch has it, ``image_index`` ``[B]``.

        An eval loader yields one row per caption (the image repeated for each of its captions),
        with ``image_index`` telling :meth:`metrics` which rows share an image. Without it, each
        row is its own image.
        """
        image, text = self._embed_both(features)
        out = {"image_emb": image, "text_emb": text}
        if "image_index" in batch:
            out["image_index"] = torch.as_tensor(batch["image_index"], device=image.device)
        return out

    def metrics(self, gathered: dict[str, torch.Tensor]) -> dict[str, float]:
        """``i2t_r{1,5,10}``, ``t2i_r{1,5,10}`` (percent), ``*_medr``, ``*_meanr`` and ``rsum``; with
        ``eval_folds`` the same keys averaged over the folds, prefixed ``"{n}fold_"``."""
        image, text, index = gathered["image_emb"], gathered["text_emb"], gathered.get("image_index")
        out = retrieval_metrics_from_samples(image, text, index, "i", "t")
        if self.eval_folds:
            if index is None:
                index = torch.arange(image.shape[0], device=image.device)
            out.update(fold_averaged_metrics(image, text, index, self.eval_folds, "i", "t"))
        return out
