"""MDETR's losses against values computed by hand on small inputs."""

from __future__ import annotations

import math

import pytest
import torch

from unipt.models.mdetr import HeadOutputs, MDETRCriterion, MDETRLossConfig
from unipt.tasks.mdetr_losses import (
    box_losses,
    contrastive_align_loss,
    hungarian_match,
    soft_token_loss,
    soft_token_targets,
)


def log_softmax(row: list[float]) -> list[float]:
    total = math.log(sum(math.exp(v) for v in row))
    return [v - total for v in row]


def test_soft_token_targets_spread_mass_over_the_box_tokens() -> None:
    targets = soft_token_targets(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), num_classes=4)
    assert targets.shape == (2, 5)  # 4 token classes + "no object"
    torch.testing.assert_close(targets, torch.tensor([[0.5, 0.5, 0, 0, 0], [0, 0, 1.0, 0, 0]]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="max_length <= 2"):
        soft_token_targets(torch.ones(1, 3), num_classes=2)


def test_soft_token_loss_by_hand() -> None:
    """Query 0 matched to a box named by tokens {0, 1}; query 1 unmatched (eos weight 0.1); 1 box."""
    logits = torch.tensor([[[2.0, 1.0, -1.0, 0.5], [0.0, 0.3, 0.2, 1.5]]])  # [B=1, Q=2, C+1=4]
    soft = [soft_token_targets(torch.tensor([[1.0, 1.0, 0.0]]), num_classes=3)]
    matches = [(torch.tensor([0]), torch.tensor([0]))]
    q0, q1 = log_softmax([2.0, 1.0, -1.0, 0.5]), log_softmax([0.0, 0.3, 0.2, 1.5])
    p = 1 / (2 + 1e-6)  # each of the two tokens' share, as released (sum + 1e-6)
    expected = -(p * q0[0] + p * q0[1]) + 0.1 * -q1[3]
    value = soft_token_loss(logits, matches, soft, eos_coef=0.1, num_boxes=1.0)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    assert float(soft_token_loss(logits, matches, soft, 0.1, num_boxes=2.0)) == pytest.approx(expected / 2, rel=1e-5)


def test_contrastive_align_loss_by_hand() -> None:
    """Q=2 queries, T=3 tokens, temperature 0.5; query 1 matched to the box named by tokens {0, 2}."""
    q = torch.tensor([[[1.0, 0.0], [0.6, 0.8]]])
    t = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.8, 0.6]]])
    s = [[sum(a * b for a, b in zip(qi, tj, strict=True)) / 0.5 for tj in t[0].tolist()] for qi in q[0].tolist()]

    def lse(values: list[float]) -> float:
        return math.log(sum(math.exp(v) for v in values))

    box_to_tokens = -(s[1][0] + s[1][2]) / (2 + 1e-6) + lse(s[1])           # query 1 over its 2 tokens
    tokens_to_box = sum(-s[1][j] / (1 + 1e-6) + lse([s[0][j], s[1][j]]) for j in (0, 2))  # tokens 0, 2
    expected = (box_to_tokens + tokens_to_box) / 2 / 1.0
    matches = [(torch.tensor([1]), torch.tensor([0]))]
    value = contrastive_align_loss(q, t, matches, [torch.tensor([[1.0, 0.0, 1.0]])], temperature=0.5, num_boxes=1.0)
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_box_losses_by_hand() -> None:
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.4]]])
    target = [torch.tensor([[0.35, 0.3, 0.2, 0.4]])]
    l1, giou = box_losses(boxes, [(torch.tensor([1]), torch.tensor([0]))], target, num_boxes=1.0)
    assert float(l1) == pytest.approx(0.05, abs=1e-6)
    # xyxy: (0.2, 0.1, 0.4, 0.5) vs (0.25, 0.1, 0.45, 0.5): overlap 0.15 x 0.4, union 0.1, hull 0.25 x 0.4
    iou = 0.06 / (0.08 + 0.08 - 0.06)
    assert float(giou) == pytest.approx(1 - (iou - (0.1 - 0.1) / 0.1), abs=1e-5)


def test_matching_uses_the_soft_token_cost() -> None:
    """Two queries with the same box: the one whose classes put mass on the box's tokens is matched;
    with a far better box elsewhere, the box costs (5 x L1, 2 x GIoU) win."""
    logits = torch.tensor([[[0.0, 0.0, 5.0], [5.0, 0.0, 0.0]]])  # query 1 says "token 0", query 0 "no object"
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]]])
    target, soft = [torch.tensor([[0.5, 0.5, 0.2, 0.2]])], [soft_token_targets(torch.tensor([[1.0]]), 2)]
    cfg = MDETRLossConfig()
    assert hungarian_match(logits, boxes, target, soft, cfg)[0][0].tolist() == [1]
    boxes[0, 1] = torch.tensor([0.1, 0.1, 0.1, 0.1])
    assert hungarian_match(logits, boxes, target, soft, cfg)[0][0].tolist() == [0]


def test_criterion_sums_weighted_terms_over_every_decoder_output() -> None:
    torch.manual_seed(0)
    k, b, q, c, t = 3, 2, 4, 6, 5
    heads = HeadOutputs(torch.randn(k, b, q, c + 1), torch.rand(k, b, q, 4) * 0.5 + 0.25,
                        torch.nn.functional.normalize(torch.randn(k, b, q, 8), dim=-1),
                        torch.nn.functional.normalize(torch.randn(b, t, 8), dim=-1))
    targets = [torch.tensor([[0.4, 0.5, 0.2, 0.3]]), torch.tensor([[0.6, 0.4, 0.3, 0.2]])]
    maps = [torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])]
    losses = MDETRCriterion()(heads, targets, maps)
    names = ("loss_ce", "loss_bbox", "loss_giou", "loss_contrastive_align")
    assert set(losses) == {"loss", *names, *(f"{n}_{i}" for n in names for i in range(k - 1))}
    weights = {"loss_ce": 1, "loss_bbox": 5, "loss_giou": 2, "loss_contrastive_align": 1}
    total = sum(weights[n] * losses[n + s] for n in names for s in ("", "_0", "_1"))
    torch.testing.assert_close(losses["loss"], total)
    final_only = MDETRCriterion(MDETRLossConfig(aux_loss=False))(heads, targets, maps)
    assert set(final_only) == {"loss", *names}
    torch.testing.assert_close(final_only["loss_ce"], losses["loss_ce"])
