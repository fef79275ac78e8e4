import pytest
import torch

from unipt.tasks.matcher import MatchCosts, assignment, match_queries


def test_single_target_is_the_argmin() -> None:
    q, t = assignment(torch.tensor([[3.0], [1.0], [2.0]]))
    assert q.tolist() == [1] and t.tolist() == [0]


def test_hungarian_beats_greedy_by_hand() -> None:
    pytest.importorskip("scipy")
    # Greedy would give both targets to query 0; the optimum is q0->t1, q1->t0 (cost 2 + 2 = 4).
    cost = torch.tensor([[1.0, 2.0], [2.0, 10.0], [5.0, 5.0]])
    q, t = assignment(cost)
    assert dict(zip(t.tolist(), q.tolist(), strict=True)) == {0: 1, 1: 0}


def test_too_many_targets_and_no_targets() -> None:
    with pytest.raises(ValueError, match="cannot match"):
        assignment(torch.zeros(1, 2))
    q, t = assignment(torch.zeros(3, 0))
    assert q.numel() == 0 and t.numel() == 0


def test_match_queries_picks_the_closest_box_and_uses_scores() -> None:
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2], [0.8, 0.8, 0.1, 0.1]]])
    target = [torch.tensor([[0.31, 0.3, 0.2, 0.2]])]
    scores = torch.zeros(1, 3)
    ((q, t),) = match_queries(scores, boxes, target)
    assert q.tolist() == [1]
    # With box costs off, only the score decides.
    scores = torch.tensor([[0.0, -5.0, 5.0]])
    ((q, _),) = match_queries(scores, boxes, target, MatchCosts(1.0, 0.0, 0.0))
    assert q.tolist() == [2]
