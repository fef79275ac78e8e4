"""Hungarian matching of predicted queries to target boxes (DETR / MDETR costs).

The cost of assigning query q to target t is
``cost_class * (-p_q) + cost_bbox * L1(box_q, box_t) + cost_giou * (-GIoU(box_q, box_t))``
with p_q the query's object probability. With one target per sample the optimal assignment is
simply the argmin over queries; several targets need the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``), which is used when scipy is installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unipt.tasks.boxes import cxcywh_to_xyxy, pairwise_generalized_box_iou

try:  # scipy is optional: only needed for samples with more than one target box
    from scipy.optimize import linear_sum_assignment
except ImportError:  # pragma: no cover - exercised only without scipy
    linear_sum_assignment = None


@dataclass(frozen=True)
class MatchCosts:
    """Weights of the matching cost terms (MDETR: class 1, bbox L1 5, GIoU 2)."""

    cost_class: float = 1.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0


def assignment(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment of a ``[Q, T]`` cost table (``T <= Q``).

    Returns ``(query_idx [T], target_idx [T])``, both long tensors on ``cost``'s device.
    """
    n_queries, n_targets = cost.shape
    device = cost.device
    if n_targets == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    if n_targets > n_queries:
        raise ValueError(f"cannot match {n_targets} targets to {n_queries} queries")
    if n_targets == 1:
        return cost[:, 0].argmin().reshape(1), torch.zeros(1, dtype=torch.long, device=device)
    if linear_sum_assignment is None:
        raise ImportError("matching several target boxes per sample needs scipy (pip install scipy)")
    rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
    pairs = torch.as_tensor(np.stack((rows, cols)), dtype=torch.long, device=device)
    return pairs[0], pairs[1]


@torch.no_grad()
def match_queries(
    scores: torch.Tensor, boxes: torch.Tensor, targets: list[torch.Tensor], costs: MatchCosts | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Match each sample's targets to queries.

    Args:
        scores: ``[B, Q]`` object logits of the queries.
        boxes: ``[B, Q, 4]`` predicted ``cxcywh`` boxes.
        targets: B tensors ``[T_b, 4]`` of target ``cxcywh`` boxes.
        costs: cost weights (default :class:`MatchCosts`).

    Returns:
        B pairs ``(query_idx [T_b], target_idx [T_b])``.
    """
    costs = costs or MatchCosts()
    prob = scores.sigmoid()
    matches = []
    for b, target in enumerate(targets):
        cost = (
            -costs.cost_class * prob[b].unsqueeze(1)
            + costs.cost_bbox * torch.cdist(boxes[b], target, p=1)
            - costs.cost_giou * pairwise_generalized_box_iou(cxcywh_to_xyxy(boxes[b]), cxcywh_to_xyxy(target))
        )
        matches.append(assignment(cost))
    return matches
