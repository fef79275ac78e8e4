"""Guided window pooling: bring a high-resolution CNN stage onto the guide's (final stage's) grid.

For a stage ``X`` ``[B, C, H, W]`` and the raw guide map ``Z`` ``[B, Cg, h, w]`` with window
``r = H / h``: project the guide into the stage's channels (``relu(Conv1x1(Z))``), nearest-upsample
it, take the channel-summed product with ``X`` as a saliency map, L1-normalise the saliency inside
each ``r x r`` window, add the uniform weight ``1/r^2`` and sum each window. The result is
``[B, C, h, w]``: attention-weighted sum + window mean. Windows come from the stage shapes, so any
input size works; a stage whose size is not a whole multiple of the guide's is first resized to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GuidedWindowPooling(nn.Module):
    """Pool one stage ``[B, C, H, W]`` onto the guide grid ``[B, C, h, w]``.

    Args:
        channels: stage channels ``C``. guide_channels: raw guide channels ``Cg``.
        eps: L1 normalisation epsilon inside windows.
        guided: ``False`` is the ablation "plain average pooling" (no parameters are used).
    """

    def __init__(self, channels: int, guide_channels: int, eps: float = 1e-8, guided: bool = True):
        super().__init__()
        self.guided, self.eps = guided, eps
        self.guide_to_stage = nn.Conv2d(guide_channels, channels, kernel_size=1) if guided else None

    def forward(self, stage: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = stage.shape
        h, w = guide.shape[-2:]
        rh, rw = window_size(stage.shape[-2:], (h, w))
        if stage.shape[-2:] != (rh * h, rw * w):
            stage = F.interpolate(stage, size=(rh * h, rw * w), mode="bilinear", align_corners=False)
        if not self.guided:
            return F.avg_pool2d(stage, kernel_size=(rh, rw))
        windows = stage.reshape(b, c, h, rh, w, rw)
        projected = self.guide_to_stage(guide).relu()  # [B, C, h, w]; nearest upsampling == broadcast
        saliency = torch.einsum("bchxwy,bchw->bhxwy", windows, projected).relu()
        weights = saliency / (saliency.sum(dim=(2, 4), keepdim=True) + self.eps) + 1.0 / (rh * rw)
        return torch.einsum("bchxwy,bhxwy->bchw", windows, weights)


def window_size(stage_hw: tuple[int, int] | torch.Size, guide_hw: tuple[int, int]) -> tuple[int, int]:
    """Window ``(rh, rw)`` that maps a stage grid onto the guide grid (at least 1 each way)."""
    return (max(1, round(stage_hw[0] / guide_hw[0])), max(1, round(stage_hw[1] / guide_hw[1])))
