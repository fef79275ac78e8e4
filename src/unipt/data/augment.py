"""VSE-infinity's training-time augmentation, as released (``lib/datasets/image_caption.py``).

Images (training): crop a random window whose sides are the same random fraction ``r ~ U(0.6, 1.0)`` of
the image's (aspect kept, position uniform), resize it to ``S x S`` (no aspect-preserving crop: a
"squash"), flip it horizontally with probability 0.5. Evaluation: the whole image squashed to ``S x S``.

Captions (training): each word (a basic-tokenizer token, i.e. split on spaces and punctuation) is
picked with probability 0.2; a picked word has all its word pieces replaced by the mask token (50 %),
each of its pieces replaced by a uniformly random vocabulary entry (10 %), or is deleted (40 %).

Randomness comes from torch's global generator, which the trainer seeds per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image


@dataclass(frozen=True)
class AugmentConfig:
    """The recipe (defaults: VSE-infinity's). ``data.options.augment`` in a run config fills it.

    Attributes:
        image_crop: ``(low, high)`` range of the random crop's side ratio; ``None``: no crop.
        image_flip: probability of a horizontal flip.
        image_resize: ``squash`` (resize to ``S x S``, train and eval, as released) or ``crop`` (the
            tower's own shorter-side resize + centre crop).
        caption_prob: probability that a word is augmented.
        caption_mask / caption_random: shares of augmented words that become mask tokens / random tokens;
            the rest is deleted.
    """

    image_crop: tuple[float, float] | None = (0.6, 1.0)
    image_flip: float = 0.5
    image_resize: str = "squash"
    caption_prob: float = 0.2
    caption_mask: float = 0.5
    caption_random: float = 0.1

    def __post_init__(self) -> None:
        if self.image_crop is not None:
            low, high = self.image_crop
            if not 0 < low <= high <= 1:
                raise ValueError(f"augment.image_crop {self.image_crop} must satisfy 0 < low <= high <= 1")
            object.__setattr__(self, "image_crop", (float(low), float(high)))
        if self.image_resize not in ("squash", "crop"):
            raise ValueError(f"augment.image_resize must be 'squash' or 'crop', got {self.image_resize!r}")
        for name in ("image_flip", "caption_prob", "caption_mask", "caption_random"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment.{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if self.caption_mask + self.caption_random > 1:
            raise ValueError("augment.caption_mask + caption_random must not exceed 1 (the rest is deleted)")


def _uniform() -> float:
    return float(torch.rand(()))


def random_crop_flip(image: Image.Image, config: AugmentConfig) -> Image.Image:
    """The training-time crop and flip (the resize to ``S x S`` follows in :func:`squash`)."""
    if config.image_crop is not None:
        low, high = config.image_crop
        ratio = low + (high - low) * _uniform()
        width, height = image.size
        crop_w, crop_h = int(width * ratio), int(height * ratio)
        left = int(torch.randint(width - crop_w, ())) if width > crop_w else 0
        top = int(torch.randint(height - crop_h, ())) if height > crop_h else 0
        image = image.crop((left, top, left + crop_w, top + crop_h))
    if _uniform() < config.image_flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def squash(image: Image.Image, size: int) -> Image.Image:
    """Resize to ``size x size`` regardless of the aspect ratio (VSE-infinity's ``cv2.resize`` to the target)."""
    return image.convert("RGB").resize((size, size), Image.BILINEAR)


def augment_words(words: list[list[int]], config: AugmentConfig, mask_id: int, vocab_size: int) -> list[int]:
    """Word-piece ids of one caption after caption augmentation; ``words`` holds each word's piece ids."""
    out: list[int] = []
    for pieces in words:
        draw = _uniform()
        if draw >= config.caption_prob:
            out.extend(pieces)
            continue
        draw /= config.caption_prob
        if draw < config.caption_mask:
            out.extend([mask_id] * len(pieces))
        elif draw < config.caption_mask + config.caption_random:
            out.extend(int(i) for i in torch.randint(vocab_size, (len(pieces),)))
        # else: the word is deleted
    return out
