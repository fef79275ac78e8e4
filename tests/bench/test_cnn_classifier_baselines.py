"""Baselines on a plain CNN *classifier* (EfficientNet-style: positional input, logits out, padded conv subclass).

The suites run every method on EfficientNet-Lite0, which is not a Hugging Face model: its forward takes
``x`` positionally, returns logits, and its convolutions are a ``Conv2d`` subclass with TF-style "same"
padding and an extra constructor argument. These tests pin the behaviour the suites rely on.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unipt.baselines._peft import conv_targets, plain_convs
from unipt.registry import build_method


class SamePadConv(nn.Conv2d):
    """Like EfficientNet's ``Conv2dStaticSamePadding``: pads in forward, needs ``image_size`` to be built."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *, image_size: int, bias: bool = False):
        super().__init__(cin, cout, kernel, stride=stride, bias=bias)
        self.pad = (kernel - 1) // 2
        self.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, [self.pad] * 4), self.weight, self.bias, self.stride)


class TinyClassifier(nn.Module):
    """stem 3x3/2 -> block (1x1 expand, depthwise 3x3/2, 1x1 project) -> head 1x1 -> pool -> fc logits."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SamePadConv(3, 8, 3, 2, image_size=32)
        self._bn0 = nn.BatchNorm2d(8)
        self._blocks = nn.Sequential(nn.Sequential(
            SamePadConv(8, 16, 1, image_size=16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16), nn.ReLU(),
            SamePadConv(16, 8, 1, image_size=8),
        ))
        self._conv_head = SamePadConv(8, 24, 1, image_size=8)
        self._act = nn.ReLU()
        self._fc = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._act(self._conv_head(self._blocks(self._bn0(self._conv_stem(x)))))
        return self._fc(x.mean((2, 3)))


IMAGES = {"pixel_values": torch.randn(2, 3, 32, 32)}


@pytest.mark.parametrize("method", ["full", "bitfit", "lora"])
def test_backprop_methods_read_the_last_stage_not_the_logits(method):
    torch.manual_seed(0)
    model = build_method(method, TinyClassifier())
    assert model.final_layer == "_act"
    out = model(**IMAGES)
    assert out.last_hidden_state.shape == (2, 8 * 8, 24)  # 8x8 grid of the 24-channel head map
    out.pooled.sum().backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_lora_targets_pointwise_padded_convs_and_keeps_outputs_exact():
    torch.manual_seed(0)
    backbone = TinyClassifier().eval()
    names = conv_targets(backbone)
    # the 3x3 stride-2 padded stem and the depthwise conv are left out; pointwise padded convs stay
    assert names == ["_blocks.0.0", "_blocks.0.4", "_conv_head"]
    with torch.no_grad():
        before = backbone(IMAGES["pixel_values"])
    assert plain_convs(backbone, names) == 3
    assert all(type(dict(backbone.named_modules())[n]) is nn.Conv2d for n in names)
    with torch.no_grad():
        assert torch.allclose(backbone(IMAGES["pixel_values"]), before, atol=1e-6)
    lora = build_method("lora", TinyClassifier(), r=2)
    assert "Conv2d" in lora.variant and len(lora.adapted()) == 3


def test_lst_finds_the_cnn_stages_itself():
    lst = build_method("lst", TinyClassifier(), reduction=4, probe_size=32)
    assert lst.layer_names == ["_blocks.0.1", "_act"]  # the last module at 16x16, then at 8x8
    out = lst(**IMAGES)
    assert out.last_hidden_state.shape[-1] == 24 and not any(p.requires_grad for p in lst.backbone.parameters())
