"""The EMA of trained weights (MDETR evaluates it): the update rule, swapping in and out, save/restore."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unipt.train.ema import WeightAverage


def test_update_rule_swap_and_state() -> None:
    module = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    keys = ["0.weight", "0.bias", "1.running_mean", "1.num_batches_tracked"]
    ema = WeightAverage(module, keys, decay=0.75)
    assert set(ema.shadow) == {"0.weight", "0.bias", "1.running_mean"}  # integer counters are not averaged
    start = module[0].weight.detach().clone()
    with torch.no_grad():
        module[0].weight.add_(4.0)
    ema.update(module)
    torch.testing.assert_close(ema.shadow["0.weight"], start + 0.25 * 4.0)  # 0.75 * old + 0.25 * new
    live = module[0].weight.detach().clone()
    with ema.swapped(module):
        torch.testing.assert_close(module[0].weight.detach(), start + 1.0)
    torch.testing.assert_close(module[0].weight.detach(), live)

    restored = WeightAverage(module, keys, decay=0.75)
    restored.load_state_dict(ema.state_dict())
    torch.testing.assert_close(restored.shadow["0.weight"], ema.shadow["0.weight"])
    with pytest.raises(ValueError, match="lacks"):
        restored.load_state_dict({})
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(module, keys, decay=1.0)
