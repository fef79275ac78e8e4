"""Records -> MDETR inputs: resized, padded images with their pixel mask, tokenized captions, token maps.

Images follow MDETR's evaluation transform: the shorter side resized to ``size`` (800) unless the longer
side would exceed ``max_size`` (1333), ImageNet normalisation, zero padding to the largest image of the
batch with ``pixel_mask`` marking real pixels. (The released *training* transform adds random
multi-scale resizing and box-preserving crops; they are not reproduced here.)

Captions are tokenized with the RoBERTa tokenizer, padded to the batch's longest. The referred box's
token map ``[B, T]`` marks the tokens that overlap its ``tokens_positive`` character spans (MDETR's
annotation); records without spans (the REFER layout) use the whole caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from unipt.preprocess import IMAGENET_MEAN, IMAGENET_STD

TARGETS_KEY = "targets"  # preprocessor outputs under this key are batch targets, not backbone inputs


def resized_shape(width: int, height: int, size: int, max_size: int | None) -> tuple[int, int]:
    """``(new_height, new_width)``: shorter side ``size``, longer side at most ``max_size`` (DETR's rule)."""
    short, long = min(width, height), max(width, height)
    if max_size is not None and long / short * size > max_size:
        size = int(round(max_size * short / long))
    if width <= height:
        return int(size * height / width) if width != size else height, size
    return size, int(size * width / height) if height != size else width


def token_map(offsets: torch.Tensor, spans: Sequence[Sequence[int]]) -> torch.Tensor:
    """``[T]`` 1 for every token whose character range overlaps one of ``spans`` (``[begin, end)``).

    ``offsets`` ``[T, 2]`` are the tokenizer's character offsets; special and padding tokens have an
    empty range and never count.
    """
    start, end = offsets[:, 0], offsets[:, 1]
    out = torch.zeros(offsets.shape[0], dtype=torch.float32)
    for begin, stop in spans:
        out[(end > start) & (start < stop) & (end > begin)] = 1.0
    return out


@dataclass
class MDETRPreprocessor:
    """Records (dicts with ``image`` (PIL), ``text`` and optional ``tokens_positive``) -> MDETR inputs.

    Returns ``pixel_values`` ``[B, 3, H, W]``, ``pixel_mask`` ``[B, H, W]`` (1 = real), ``input_ids`` /
    ``attention_mask`` ``[B, T]`` and, under ``"targets"``, ``token_map`` ``[B, T]``.

    Attributes:
        tokenizer: a fast RoBERTa tokenizer (character offsets are needed).
        size / max_size: image resizing (see the module docstring).
        max_length: longest caption in tokens; at most the soft-token classes (255 in MDETR).
    """

    tokenizer: Any
    size: int = 800
    max_size: int | None = 1333
    max_length: int = 255
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def image_tensor(self, image: Image.Image) -> torch.Tensor:
        """One image -> ``[3, h, w]`` resized and normalised."""
        image = image.convert("RGB")
        height, width = resized_shape(*image.size, self.size, self.max_size)
        array = np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0
        x = torch.from_numpy(array).permute(2, 0, 1)
        return (x - torch.tensor(self.mean).view(3, 1, 1)) / torch.tensor(self.std).view(3, 1, 1)

    def images(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixel_values`` ``[B, 3, H, W]`` (zero padded bottom/right) and ``pixel_mask`` ``[B, H, W]``."""
        tensors = [self.image_tensor(im) for im in images]
        height = max(t.shape[1] for t in tensors)
        width = max(t.shape[2] for t in tensors)
        values = torch.zeros(len(tensors), 3, height, width)
        mask = torch.zeros(len(tensors), height, width, dtype=torch.long)
        for i, t in enumerate(tensors):
            values[i, :, : t.shape[1], : t.shape[2]] = t
            mask[i, : t.shape[1], : t.shape[2]] = 1
        return values, mask

    def __call__(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        for record in records:
            if not isinstance(record, dict) or "image" not in record or "text" not in record:
                raise ValueError(
                    "MDETR reads whole records with 'image' and 'text' (set the tower's field to \"*\"); "
                    f"got {type(record).__name__} {sorted(record) if isinstance(record, dict) else ''}"
                )
        pixel_values, pixel_mask = self.images([r["image"] for r in records])
        texts = [r["text"] for r in records]
        encoded = self.tokenizer(texts, padding="longest", truncation=True, max_length=self.max_length,
                                 return_offsets_mapping=True, return_tensors="pt")
        offsets = encoded["offset_mapping"]
        maps = torch.stack([
            token_map(offsets[i], r.get("tokens_positive") or [[0, len(r["text"])]]) for i, r in enumerate(records)
        ])
        return {
            "pixel_values": pixel_values,
            "pixel_mask": pixel_mask,
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            TARGETS_KEY: {"token_map": maps},
        }
