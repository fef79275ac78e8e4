import pytest
import torch

from unipt.tasks.boxes import (
    box_area,
    box_iou,
    cxcywh_to_xyxy,
    generalized_box_iou,
    pairwise_box_iou,
    pairwise_generalized_box_iou,
    xyxy_to_cxcywh,
)

A = torch.tensor([0.0, 0.0, 2.0, 2.0])
B = torch.tensor([1.0, 1.0, 3.0, 3.0])  # overlaps A in the unit square [1, 2] x [1, 2]
C = torch.tensor([2.0, 0.0, 3.0, 1.0])  # touches A's right edge


def test_conversions_by_hand_and_round_trip() -> None:
    assert cxcywh_to_xyxy(torch.tensor([1.0, 1.0, 2.0, 2.0])).tolist() == A.tolist()
    assert xyxy_to_cxcywh(torch.tensor([1.0, 2.0, 4.0, 3.0])).tolist() == [2.5, 2.5, 3.0, 1.0]
    boxes = torch.rand(5, 4)
    torch.testing.assert_close(xyxy_to_cxcywh(cxcywh_to_xyxy(boxes)), boxes)


def test_area_and_iou_by_hand() -> None:
    assert float(box_area(A)) == 4.0
    # intersection 1, union 4 + 4 - 1 = 7
    assert float(box_iou(A, B)) == pytest.approx(1 / 7)
    assert float(box_iou(A, A)) == pytest.approx(1.0)
    assert float(box_iou(A, C)) == 0.0


def test_giou_by_hand() -> None:
    # enclosing box [0, 3] x [0, 3] has area 9: GIoU = 1/7 - (9 - 7)/9 = -5/63
    assert float(generalized_box_iou(A, B)) == pytest.approx(-5 / 63)
    # A = [0,1]x[0,1], D = [2,3]x[0,1]: IoU 0, union 2, enclosing 3 -> GIoU = -1/3
    unit, far = torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.tensor([2.0, 0.0, 3.0, 1.0])
    assert float(generalized_box_iou(unit, far)) == pytest.approx(-1 / 3)
    assert float(generalized_box_iou(A, A)) == pytest.approx(1.0)


def test_iou_is_invariant_to_axis_scaling() -> None:
    scale = torch.tensor([640.0, 480.0, 640.0, 480.0])
    assert float(box_iou(A * scale, B * scale)) == pytest.approx(float(box_iou(A, B)))


def test_pairwise_tables_match_elementwise() -> None:
    a, b = torch.stack([A, B]), torch.stack([A, B, C])
    table = pairwise_box_iou(a, b)
    assert table.shape == (2, 3)
    assert float(table[1, 0]) == pytest.approx(1 / 7)
    g = pairwise_generalized_box_iou(a, b)
    assert float(g[0, 1]) == pytest.approx(-5 / 63)
    assert float(g[1, 1]) == pytest.approx(1.0)
