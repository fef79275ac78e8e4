import math

import pytest
import torch

from unipt.tasks.contrastive import hinge_triplet_loss, info_nce_loss, positive_mask

# Rows images, columns captions; anchors (diagonal) 0.9, 0.6, 0.5. Costs by hand, margin 0.2:
#   caption negatives per image row: row0 0.1 (j1) + 0.05 (j2); row1 0.25 (j0); row2 0.05 (j0)
#   image negatives per caption column: col0 none; col1 0.4 (k0); col2 0.45 (k0)
SIM = torch.tensor([[0.9, 0.8, 0.75], [0.65, 0.6, 0.1], [0.35, 0.2, 0.5]], dtype=torch.float64)


def test_hinge_sum_over_negatives_by_hand() -> None:
    loss = hinge_triplet_loss(SIM, positive_mask(None, 3), margin=0.2)
    assert float(loss) == pytest.approx(0.15 + 0.25 + 0.05 + 0.0 + 0.4 + 0.45)


def test_hinge_hardest_negative_by_hand() -> None:
    loss = hinge_triplet_loss(SIM, positive_mask(None, 3), margin=0.2, max_violation=True)
    assert float(loss) == pytest.approx(0.1 + 0.25 + 0.05 + 0.0 + 0.4 + 0.45)


def test_hinge_captions_of_the_same_image_are_not_negatives() -> None:
    # Samples 0 and 1 show image 0: pairs (0,1) and (1,0) drop out of the negatives.
    positives = positive_mask(torch.tensor([0, 0, 1]), 3)
    assert positives.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    loss = hinge_triplet_loss(SIM, positives, margin=0.2)
    assert float(loss) == pytest.approx(0.05 + 0.0 + 0.05 + 0.0 + 0.0 + 0.45)


def test_info_nce_by_hand() -> None:
    sim = torch.tensor([[1.0, 0.0], [0.5, 0.0]], dtype=torch.float64)
    rows = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(0.5))) / 2  # targets 0 then 1
    cols = (math.log(1 + math.exp(-0.5)) + math.log(2)) / 2
    assert float(info_nce_loss(sim, 1.0)) == pytest.approx((rows + cols) / 2)
    # Scale multiplies the logits.
    assert float(info_nce_loss(sim / 2, 2.0)) == pytest.approx((rows + cols) / 2)


def test_info_nce_other_positives_leave_the_denominator() -> None:
    sim = torch.tensor([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    masked = info_nce_loss(sim, 10.0, positive_mask(torch.tensor([7, 7, 3]), 3))
    # Rows / columns 0 and 1 keep their anchor (10) and one negative (0): log(1 + e^-10);
    # row / column 2 has two negatives at 0: log(1 + 2 e^-10). Both directions are alike.
    expected = (2 * math.log(1 + math.exp(-10)) + math.log(1 + 2 * math.exp(-10))) / 3
    assert float(masked) == pytest.approx(expected)
    assert float(info_nce_loss(sim, 10.0)) > float(masked)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="square"):
        hinge_triplet_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        positive_mask(torch.tensor([1, 2]), 3)
