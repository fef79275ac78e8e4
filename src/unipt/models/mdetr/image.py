"""MDETR's image side: a CNN body with frozen BatchNorm, its padding mask, and sine positions.

State-dict layout (as released): the body's tensors live under ``backbone.0.body.*`` (``backbone`` is
DETR's ``Joiner``, a two-slot sequence of the body holder and the parameter-free position encoding).

Bodies:

* :func:`resnet_body`: torchvision's ResNet layout (``conv1``, ``bn1``, ``layer1`` ... ``layer4``, bottleneck
  blocks ``conv1..3`` / ``bn1..3`` / ``downsample.0..1``) written here, so ResNet-101 needs no torchvision;
  the weights come from the MDETR checkpoint.
* :func:`timm_body`: a ``timm`` ``features_only`` model (MDETR's EfficientNet-B3 variant,
  ``timm:tf_efficientnet_b3_ns``), BatchNorm frozen; needs ``pip install 'unipt[vision]'``.
* any module mapping ``[B, 3, H, W]`` to ``[B, C, h, w]`` (or a list of maps, the last one is used).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unipt.models.mdetr.config import ResNetBodyConfig


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine terms (buffers, never trained): ``[B, C, H, W]``.

    DETR-family detectors freeze BatchNorm because their batches are a few images; train and eval mode
    compute the same thing. ``num_batches_tracked`` from a regular BatchNorm checkpoint is ignored.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def _load_from_state_dict(self, state_dict: dict[str, torch.Tensor], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


class FrozenBatchNormAct2d(FrozenBatchNorm2d):
    """Frozen BatchNorm followed by the activation a fused norm+activation layer carried (timm's
    ``BatchNormAct2d``), so freezing never silently drops a non-linearity."""

    def __init__(self, channels: int, eps: float, act: nn.Module, drop: nn.Module | None = None):
        super().__init__(channels, eps)
        self.drop = drop if drop is not None else nn.Identity()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3): ``[B, C_in, H, W] -> [B, width * expansion, H/s, W/s]``."""

    def __init__(self, in_channels: int, width: int, stride: int, expansion: int):
        super().__init__()
        out = width * expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False),
                                            FrozenBatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


def resnet_body(config: ResNetBodyConfig | None = None) -> nn.Sequential:
    """The ResNet trunk up to ``layer4`` (no pooling / classifier): ``[B, 3, H, W] -> [B, C, H/32, W/32]``."""
    config = config or ResNetBodyConfig()
    parts: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(3, config.stem, 7, stride=2, padding=3, bias=False)),
        ("bn1", FrozenBatchNorm2d(config.stem)),
        ("relu", nn.ReLU(inplace=True)),
        ("maxpool", nn.MaxPool2d(3, stride=2, padding=1)),
    ]
    channels = config.stem
    for stage, (depth, width) in enumerate(zip(config.depths, config.widths, strict=True)):
        blocks = []
        for i in range(depth):
            stride = 2 if stage > 0 and i == 0 else 1
            blocks.append(Bottleneck(channels, width, stride, config.expansion))
            channels = width * config.expansion
        parts.append((f"layer{stage + 1}", nn.Sequential(*blocks)))
    return nn.Sequential(OrderedDict(parts))


def timm_body(name: str) -> nn.Module:
    """A timm ``features_only`` model (stages 1-4, the last one used) with every BatchNorm frozen."""
    try:
        import timm
    except ImportError as err:
        raise ImportError(
            f"the MDETR image body timm:{name} needs timm: pip install 'unipt[vision]' ({err})"
        ) from err
    body = timm.create_model(name, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
    freeze_batch_norms(body)
    return body


def freeze_batch_norms(module: nn.Module) -> None:
    """Replace every ``nn.BatchNorm2d`` (and subclass) inside ``module`` by a frozen copy, in place."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            act = getattr(child, "act", None)
            frozen = (FrozenBatchNormAct2d(child.num_features, child.eps, act, getattr(child, "drop", None))
                      if isinstance(act, nn.Module) else FrozenBatchNorm2d(child.num_features, child.eps))
            with torch.no_grad():
                for key in ("weight", "bias", "running_mean", "running_var"):
                    value = getattr(child, key, None)
                    if value is not None:
                        getattr(frozen, key).copy_(value)
            setattr(module, name, frozen)
        else:
            freeze_batch_norms(child)


class SinePositionEncoding(nn.Module):
    """DETR's 2-D sine positions, normalised to ``[0, 2 pi]`` over the real (unpadded) image.

    ``mask`` ``[B, h, w]`` (1 = real) -> ``[B, 2 * num_feats, h, w]``: the first ``num_feats`` channels
    encode the row, the rest the column; within each, sines and cosines alternate.
    """

    def __init__(self, num_feats: int, temperature: float = 10000.0, eps: float = 1e-6):
        super().__init__()
        self.num_feats, self.temperature, self.eps = num_feats, temperature, eps

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        real = mask.float()
        rows = real.cumsum(1)
        cols = real.cumsum(2)
        rows = rows / (rows[:, -1:, :] + self.eps) * (2 * math.pi)
        cols = cols / (cols[:, :, -1:] + self.eps) * (2 * math.pi)
        index = torch.arange(self.num_feats, dtype=torch.float32, device=mask.device)
        freq = self.temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / self.num_feats)
        pos_x, pos_y = cols[..., None] / freq, rows[..., None] / freq  # [B, h, w, F]
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class _BodySlot(nn.Module):
    """Holds the body as ``.body`` (the released ``BackboneBase``), so its keys read ``0.body.*``."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body


class ImageBackbone(nn.Module):
    """Body + padding mask + sine positions. Keys: ``0.body.*`` (the position encoding has none).

    ``forward(pixel_values [B, 3, H, W], pixel_mask [B, H, W] (1 = real pixel))`` returns
    ``(features [B, C, h, w], mask [B, h, w] bool, positions [B, D, h, w])``.
    """

    def __init__(self, body: nn.Module, hidden_dim: int):
        super().__init__()
        self.add_module("0", _BodySlot(body))
        self.position = SinePositionEncoding(hidden_dim // 2)

    @property
    def body(self) -> nn.Module:
        return getattr(self, "0").body

    def forward(
        self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.body(pixel_values)
        if isinstance(features, dict):
            features = list(features.values())
        if isinstance(features, (list, tuple)):
            features = features[-1]
        if pixel_mask is None:
            pixel_mask = pixel_values.new_ones(pixel_values.shape[0], *pixel_values.shape[-2:])
        # Nearest resampling of the pixel mask onto the feature grid, as DETR does.
        mask = F.interpolate(pixel_mask[None].float(), size=features.shape[-2:])[0].bool()
        return features, mask, self.position(mask).to(features.dtype)
