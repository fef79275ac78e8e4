"""Visual grounding (MDETR-style): box + score heads over decoder queries, Hungarian-matched losses."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unipt.outputs import AdaptedOutput
from unipt.tasks.base import Task
from unipt.tasks.boxes import box_iou, cxcywh_to_xyxy, generalized_box_iou
from unipt.tasks.matcher import MatchCosts, match_queries


class MLP(nn.Module):
    """DETR's box MLP: ``num_layers`` Linear layers with ReLU between; ``[..., D]`` -> ``[..., out_dim]``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


def target_boxes(
    boxes: torch.Tensor | list[torch.Tensor], box_mask: torch.Tensor | None, device: torch.device
) -> list[torch.Tensor]:
    """Per-sample target boxes (``cxcywh``, normalised to [0, 1]) as B tensors ``[T_b, 4]``.

    Args:
        boxes: ``[B, 4]`` (one referred box each), ``[B, T, 4]`` (padded when ``box_mask``
            ``[B, T]`` is given) or a list of ``[T_b, 4]`` tensors.
        box_mask: which of the ``[B, T, 4]`` boxes are real; ``None`` means all.
        device: where the result lives.
    """
    if isinstance(boxes, (list, tuple)):
        return [torch.as_tensor(b, device=device, dtype=torch.float32).reshape(-1, 4) for b in boxes]
    boxes = torch.as_tensor(boxes, device=device, dtype=torch.float32)
    if boxes.dim() == 2:
        return list(boxes.unsqueeze(1))
    if box_mask is None:
        return list(boxes)
    mask = torch.as_tensor(box_mask, device=device).bool()
    return [b[m] for b, m in zip(boxes, mask, strict=True)]


class Grounding(Task):
    """Referring-expression grounding over the decoder query stream.

    Stream: ``queries.last_hidden_state`` is ``[B, Q, D]`` (final decoder layer); optional
    ``queries.aux_hidden_states`` ``[k, B, Q, D]`` (earlier decoder layers) each get the same loss
    (DETR auxiliary decoding losses, sharing the heads). Batch: ``boxes`` (see
    :func:`target_boxes`) and optional ``box_mask``; the first box of a sample is the referred one
    for the metric.

    Heads: box = MLP(D, D, 4, ``box_layers``) + sigmoid -> normalised (cx, cy, w, h); score =
    Linear(D, 1), the logit that the query is the referred object.

    Loss per decoder layer, after matching (costs ``match_costs``, MDETR: 1, 5, 2):
    ``w_score * BCE(scores) + w_bbox * L1 + w_giou * (1 - GIoU)``; box terms are summed over
    matched pairs and divided by the number of targets, and the BCE is a weighted mean where
    unmatched queries weigh ``no_object_weight`` (DETR's ``eos_coef`` 0.1), so that Q - 1
    negatives do not swamp the one positive.

    Args:
        hidden_dim: D of the query features.
        box_layers: depth of the box MLP.
        match_costs: matching cost weights.
        loss_score / loss_bbox / loss_giou: loss weights (1, 5, 2).
        no_object_weight: BCE weight of unmatched queries.
        aux_loss: add the losses of ``aux_hidden_states`` when present.
        tower: name of the query stream in ``features``.
    """

    name = "grounding"
    primary_metric = "acc@0.5"

    def __init__(
        self,
        hidden_dim: int,
        box_layers: int = 3,
        match_costs: MatchCosts | None = None,
        loss_score: float = 1.0,
        loss_bbox: float = 5.0,
        loss_giou: float = 2.0,
        no_object_weight: float = 0.1,
        aux_loss: bool = True,
        tower: str = "queries",
    ) -> None:
        super().__init__()
        self.towers = (tower,)
        self.box_head = MLP(hidden_dim, hidden_dim, 4, box_layers)
        self.score_head = nn.Linear(hidden_dim, 1)
        self.match_costs = match_costs or MatchCosts()
        self.weights = {"score": loss_score, "bbox": loss_bbox, "giou": loss_giou}
        self.no_object_weight = no_object_weight
        self.aux_loss = aux_loss

    def heads(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, Q, D]`` -> (score logits ``[B, Q]``, ``cxcywh`` boxes in [0, 1] ``[B, Q, 4]``)."""
        return self.score_head(hidden).squeeze(-1), self.box_head(hidden).sigmoid()

    def layer_losses(
        self, scores: torch.Tensor, boxes: torch.Tensor, targets: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``score`` / ``bbox`` / ``giou`` losses of one decoder layer's predictions.

        Args:
            scores: ``[B, Q]`` logits; boxes: ``[B, Q, 4]`` ``cxcywh`` (from :meth:`heads`).
            targets: B tensors ``[T_b, 4]`` of ``cxcywh`` target boxes.
        """
        matches = match_queries(scores, boxes, targets, self.match_costs)
        sample_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(matches)])
        query_idx = torch.cat([q for q, _ in matches])
        matched_pred = boxes[sample_idx, query_idx]  # [N, 4]
        matched_target = torch.cat([t[j] for t, (_, j) in zip(targets, matches, strict=True)])
        num_targets = max(matched_target.shape[0], 1)

        is_target = torch.zeros_like(scores)
        is_target[sample_idx, query_idx] = 1.0
        weight = torch.full_like(scores, self.no_object_weight).masked_fill(is_target.bool(), 1.0)
        bce = F.binary_cross_entropy_with_logits(scores, is_target, reduction="none")
        giou = generalized_box_iou(cxcywh_to_xyxy(matched_pred), cxcywh_to_xyxy(matched_target))
        return {
            "score": (bce * weight).sum() / weight.sum(),
            "bbox": F.l1_loss(matched_pred, matched_target, reduction="sum") / num_targets,
            "giou": (1 - giou).sum() / num_targets,
        }

    def forward(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Returns ``loss`` (all layers), the final layer's ``loss_score`` / ``loss_bbox`` /
        ``loss_giou``, ``scores`` ``[B, Q]`` and ``boxes`` ``[B, Q, 4]``."""
        out = self.stream(features, self.towers[0])
        hidden = out.last_hidden_state
        targets = target_boxes(self.require(batch, "boxes"), batch.get("box_mask"), hidden.device)
        layers = [hidden]
        if self.aux_loss and out.aux_hidden_states is not None:
            layers = [*out.aux_hidden_states, hidden]
        total = hidden.new_zeros(())
        for layer in layers:  # the final layer comes last, so `parts`, `scores`, `boxes` are its own
            scores, boxes = self.heads(layer)
            parts = self.layer_losses(scores, boxes, targets)
            total = total + sum(self.weights[k] * v for k, v in parts.items())
        return {
            "loss": total,
            **{f"loss_{k}": v.detach() for k, v in parts.items()},
            "scores": scores,
            "boxes": boxes,
        }

    @torch.no_grad()
    def predict(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``box`` ``[B, 4]`` (``cxcywh`` of the top-scored query), ``score`` ``[B]`` (its
        probability) and, when ``boxes`` is in the batch, ``iou`` ``[B]`` with the referred box."""
        scores, boxes = self.heads(self.stream(features, self.towers[0]).last_hidden_state)
        top = scores.argmax(dim=1)
        rows = torch.arange(scores.shape[0], device=scores.device)
        out = {"box": boxes[rows, top], "score": scores[rows, top].sigmoid()}
        if "boxes" in batch:
            targets = target_boxes(batch["boxes"], batch.get("box_mask"), scores.device)
            referred = torch.stack([t[0] for t in targets])
            out["iou"] = box_iou(cxcywh_to_xyxy(out["box"]), cxcywh_to_xyxy(referred))
        return out

    def metrics(self, gathered: dict[str, torch.Tensor]) -> dict[str, float]:
        """``acc@0.5``: percent of samples whose top box has IoU >= 0.5; ``mean_iou`` in percent."""
        if "iou" not in gathered:
            raise KeyError("grounding metrics need `boxes` in the eval batches")
        iou = gathered["iou"].double()
        return {"acc@0.5": 100.0 * float((iou >= 0.5).double().mean()), "mean_iou": 100.0 * float(iou.mean())}
