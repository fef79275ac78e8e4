"""Turn raw text and PIL images into backbone inputs (no torchvision needed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and crop the centre ``size x size`` square."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


@dataclass
class ImagePreprocessor:
    """PIL images -> ``{"pixel_values": [B, 3, S, S]}``.

    ``scale_shift`` (EfficientNet-Lite: ``x * 255 / 128 - 127 / 128``) or ``mean``/``std`` normalisation
    of ``[0, 1]`` pixels.
    """

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def tensor(self, image: Image.Image) -> torch.Tensor:
        """One image -> ``[3, S, S]`` float tensor, normalised."""
        array = np.asarray(resize_center_crop(image, self.size), dtype=np.float32) / 255.0
        x = torch.from_numpy(array).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.stack([self.tensor(img) for img in images])}


@dataclass
class TextPreprocessor:
    """Strings -> ``{"input_ids", "attention_mask"}`` with a Hugging Face tokenizer."""

    tokenizer: Callable
    max_length: int = 64

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
