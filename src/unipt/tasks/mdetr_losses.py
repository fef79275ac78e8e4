"""MDETR's training losses: Hungarian matching, soft-token prediction, boxes, contrastive alignment.

Notation: B samples, Q queries, C + 1 soft-token classes (the last is "no object"), T text tokens,
``n_b`` target boxes in sample b. A *token map* ``[n_b, T]`` marks (1) the text tokens each target box
is referred to by (its ``tokens_positive`` character spans, tokenized).

* **Matching** (per decoder layer): cost of query q for box t =
  ``cost_class * -<softmax(logits_q), p_t> + cost_bbox * L1(b_q, b_t) + cost_giou * -GIoU(b_q, b_t)``
  with ``p_t`` the box's token map normalised to sum 1; minimum-cost one-to-one assignment.
* **Soft-token loss** ``loss_ce``: cross-entropy between ``log_softmax(logits_q)`` and the target
  distribution: ``p_t`` for a matched query, all mass on "no object" for the others, which weigh
  ``eos_coef``; summed and divided by the number of boxes.
* **Boxes**: L1 and ``1 - GIoU`` over matched pairs, summed / number of boxes.
* **Contrastive alignment**: ``s_qj = <q_q, t_j> / temperature`` between L2-normalised query and token
  projections. For every matched query with positive tokens P:
  ``-mean_{j in P} s_qj + logsumexp_j s_qj``; for every token with positive queries P':
  ``-mean_{q in P'} s_qj + logsumexp_q s_qj``; the two sums are averaged and divided by the number of
  boxes. As released, the ``logsumexp`` over tokens includes the batch's padding tokens.

The number of boxes is averaged over processes under ``torch.distributed`` (as released), so every rank
normalises by the same count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unipt.tasks.boxes import cxcywh_to_xyxy, generalized_box_iou, pairwise_generalized_box_iou
from unipt.tasks.matcher import assignment
from unipt.tasks.mdetr_heads import HeadOutputs

Matches = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class MDETRLossConfig:
    """Matching costs and loss weights (``main.py`` defaults).

    Attributes:
        cost_class / cost_bbox / cost_giou: Hungarian matching cost weights (1, 5, 2).
        ce / bbox / giou / contrastive_align: loss weights (1, 5, 2, 1).
        eos_coef: weight of unmatched queries in the soft-token loss (0.1).
        temperature: contrastive-alignment temperature (0.07, ``--temperature_NCE``).
        aux_loss: the same losses on every earlier decoder output.
    """

    cost_class: float = 1.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    ce: float = 1.0
    bbox: float = 5.0
    giou: float = 2.0
    contrastive_align: float = 1.0
    eos_coef: float = 0.1
    temperature: float = 0.07
    aux_loss: bool = True


def soft_token_targets(token_map: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[n, T]`` 0/1 token map -> ``[n, C + 1]`` distributions over token positions (``1e-6`` guards
    a box with no token, as released); the "no object" column stays 0."""
    n, length = token_map.shape
    if length > num_classes:
        raise ValueError(
            f"the captions have {length} tokens but the soft-token classifier has {num_classes} token classes; "
            f"tokenize with max_length <= {num_classes}"
        )
    out = token_map.new_zeros(n, num_classes + 1, dtype=torch.float32)
    out[:, :length] = token_map.float() / (token_map.float().sum(-1, keepdim=True) + 1e-6)
    return out


@torch.no_grad()
def hungarian_match(logits: torch.Tensor, boxes: torch.Tensor, target_boxes: list[torch.Tensor],
                    soft_targets: list[torch.Tensor], config: MDETRLossConfig) -> Matches:
    """``logits`` ``[B, Q, C + 1]``, ``boxes`` ``[B, Q, 4]`` (cxcywh), per sample ``[n_b, 4]`` boxes and
    ``[n_b, C + 1]`` soft targets -> per sample ``(query_idx [n_b], target_idx [n_b])``."""
    prob = logits.softmax(-1)
    matches = []
    for b, (target, soft) in enumerate(zip(target_boxes, soft_targets, strict=True)):
        cost = (
            config.cost_class * -(prob[b] @ soft.t())
            + config.cost_bbox * torch.cdist(boxes[b], target, p=1)
            - config.cost_giou * pairwise_generalized_box_iou(cxcywh_to_xyxy(boxes[b]), cxcywh_to_xyxy(target))
        )
        matches.append(assignment(cost))
    return matches


def _matched(matches: Matches) -> tuple[torch.Tensor, torch.Tensor]:
    """(sample index, query index) of every matched pair, concatenated over the batch."""
    samples = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(matches)])
    return samples, torch.cat([q for q, _ in matches])


def soft_token_loss(logits: torch.Tensor, matches: Matches, soft_targets: list[torch.Tensor], eos_coef: float,
                    num_boxes: float) -> torch.Tensor:
    """Soft-token cross-entropy (see the module docstring); ``logits`` ``[B, Q, C + 1]``."""
    log_prob = logits.log_softmax(-1)
    target = torch.zeros_like(log_prob)
    target[..., -1] = 1.0
    weight = torch.full(log_prob.shape[:2], eos_coef, dtype=log_prob.dtype, device=log_prob.device)
    samples, queries = _matched(matches)
    if samples.numel():
        target[samples, queries] = torch.cat([s[t] for s, (_, t) in zip(soft_targets, matches, strict=True)]).to(
            target.dtype)
        weight[samples, queries] = 1.0
    return (-(log_prob * target).sum(-1) * weight).sum() / num_boxes


def box_losses(boxes: torch.Tensor, matches: Matches, target_boxes: list[torch.Tensor],
               num_boxes: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1, 1 - GIoU) of the matched ``[B, Q, 4]`` boxes against their targets, each summed / ``num_boxes``."""
    samples, queries = _matched(matches)
    predicted = boxes[samples, queries]
    target = torch.cat([t[j] for t, (_, j) in zip(target_boxes, matches, strict=True)]).to(predicted.dtype)
    l1 = F.l1_loss(predicted, target, reduction="sum") / num_boxes
    giou = generalized_box_iou(cxcywh_to_xyxy(predicted), cxcywh_to_xyxy(target))
    return l1, (1 - giou).sum() / num_boxes


def contrastive_align_loss(proj_queries: torch.Tensor, proj_tokens: torch.Tensor, matches: Matches,
                           token_maps: list[torch.Tensor], temperature: float, num_boxes: float) -> torch.Tensor:
    """Box-token contrastive alignment (see the module docstring).

    Args:
        proj_queries: ``[B, Q, H]`` normalised query projections; proj_tokens: ``[B, T, H]``.
        matches: per sample ``(query_idx, target_idx)``.
        token_maps: per sample ``[n_b, T]`` 0/1 maps of each target box's tokens.
    """
    logits = proj_queries @ proj_tokens.transpose(-1, -2) / temperature  # [B, Q, T]
    positive = torch.zeros_like(logits, dtype=torch.bool)
    for b, ((queries, targets), token_map) in enumerate(zip(matches, token_maps, strict=True)):
        if queries.numel():
            positive[b, queries] = token_map[targets].to(logits.device) > 0
    positive_logits = -logits.masked_fill(~positive, 0.0)

    def one_way(dim: int) -> torch.Tensor:
        count = positive.sum(dim) + 1e-6
        term = positive_logits.sum(dim) / count + logits.logsumexp(dim)
        return term.masked_fill(~positive.any(dim), 0.0).sum()

    return (one_way(2) + one_way(1)) / 2 / num_boxes


def average_num_boxes(count: int, device: torch.device) -> float:
    """Targets per process, averaged over ``torch.distributed`` ranks when initialised, at least 1."""
    total = torch.tensor([float(count)], device=device)
    world = 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(total)
        world = torch.distributed.get_world_size()
    return max(float(total.item()) / world, 1.0)


class MDETRCriterion:
    """All of MDETR's detection losses for every decoder output.

    ``criterion(heads, target_boxes, token_maps)`` returns unweighted ``loss_ce``, ``loss_bbox``,
    ``loss_giou``, ``loss_contrastive_align`` for the final layer, the same with suffix ``_<k>`` for
    earlier layer k (when ``aux_loss``), and ``loss``: their weighted sum.

    Args (call):
        heads: :class:`HeadOutputs` with ``[k, B, ...]`` predictions.
        target_boxes: per sample ``[n_b, 4]`` normalised ``cxcywh`` boxes.
        token_maps: per sample ``[n_b, T]`` 0/1 token maps (T = the batch's text length).
    """

    def __init__(self, config: MDETRLossConfig | None = None):
        self.config = config or MDETRLossConfig()

    def __call__(self, heads: HeadOutputs, target_boxes: list[torch.Tensor],
                 token_maps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        num_classes = heads.logits.shape[-1] - 1
        soft = [soft_token_targets(m, num_classes).to(heads.logits.device) for m in token_maps]
        num_boxes = average_num_boxes(sum(len(t) for t in target_boxes), heads.logits.device)
        weights = {"loss_ce": cfg.ce, "loss_bbox": cfg.bbox, "loss_giou": cfg.giou,
                   "loss_contrastive_align": cfg.contrastive_align}
        layers = range(heads.depth) if cfg.aux_loss else [heads.depth - 1]
        losses: dict[str, torch.Tensor] = {}
        total = heads.logits.new_zeros(())
        for k in layers:
            out = heads.layer(k)
            matches = hungarian_match(out.logits, out.boxes, target_boxes, soft, cfg)
            parts = {"loss_ce": soft_token_loss(out.logits, matches, soft, cfg.eos_coef, num_boxes)}
            parts["loss_bbox"], parts["loss_giou"] = box_losses(out.boxes, matches, target_boxes, num_boxes)
            if out.proj_queries is not None:
                parts["loss_contrastive_align"] = contrastive_align_loss(
                    out.proj_queries, out.proj_tokens, matches, token_maps, cfg.temperature, num_boxes)
            suffix = "" if k == heads.depth - 1 else f"_{k}"
            for name, value in parts.items():
                losses[name + suffix] = value
                total = total + weights[name] * value
        losses["loss"] = total
        return losses
