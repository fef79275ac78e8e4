"""Records -> CLIP-ViL inputs: the question as BERT word pieces, and the image as pixels or features.

Text, as released: ``[CLS] + word pieces + [SEP]`` cut to ``max_length`` (20) and zero-padded to exactly
``max_length``, one segment, mask 1 on real tokens.

Images, as released for raw images (``--vqa_style_transform --add_zero_padding``): resize so the short
side is ``min_size`` (384) unless the long side would pass ``max_size`` (640), pad with black to
``min_size x max_size`` (portrait) or ``max_size x min_size`` (landscape), normalise with CLIP's mean/std;
a batch takes the canvas of its first image (an image of the other orientation is cut to it, as the
released ``to_image_list``). With ``features`` set, images are never opened: each record's ``image_id``
names a feature file (:class:`~unipt.models.clipvil.visual.FeatureFiles`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from unipt.models.clipvil.visual import FeatureFiles, stack_features

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def vqa_style_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """``(new_width, new_height)``: short side ``min_size`` unless the long side would exceed ``max_size``."""
    short, long = float(min(width, height)), float(max(width, height))
    size = min_size
    if long / short * size > max_size:
        size = int(round(max_size * short / long))
    if (width <= height and width == size) or (height <= width and height == size):
        return width, height
    if width < height:
        return size, int(size * height / width)
    return int(size * width / height), size


def pad_to_canvas(image: Image.Image, min_size: int, max_size: int) -> Image.Image:
    """Centre ``image`` on a black ``min_size x max_size`` (portrait) / ``max_size x min_size`` canvas."""
    width, height = image.size
    canvas_w, canvas_h = (min_size, max_size) if width <= height else (max_size, min_size)
    canvas = Image.new("RGB", (canvas_w, canvas_h))
    # the released padding puts the odd pixel on the left / top
    canvas.paste(image, ((canvas_w - width + 1) // 2, (canvas_h - height + 1) // 2))
    return canvas


@dataclass
class CLIPViLPreprocessor:
    """Whole records (``text`` + ``image`` or ``image_id``) -> keyword inputs of ``CLIPViLBackbone``.

    Attributes:
        tokenizer: a BERT word-piece tokenizer (``bert-base-uncased``'s vocabulary for released weights).
        max_length: text length including [CLS] / [SEP] (the released ``MAX_VQA_LENGTH`` = 20).
        min_size / max_size: the image resize and canvas (384 / 640).
        features: read pre-extracted features instead of images.
        text_field / image_field / id_field: record keys.
    """

    tokenizer: Callable[..., Any]
    max_length: int = 20
    min_size: int = 384
    max_size: int = 640
    features: FeatureFiles | None = None
    text_field: str = "text"
    image_field: str = "image"
    id_field: str = "image_id"

    def text(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer([t.strip() for t in texts], padding="max_length", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        ids = enc["input_ids"]
        return {"input_ids": ids, "attention_mask": enc["attention_mask"], "token_type_ids": torch.zeros_like(ids)}

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``[B, 3, H, W]`` normalised pixels on the first image's canvas."""
        tensors = [self._image_tensor(image) for image in images]
        canvas = tensors[0].shape[1:]
        batch = torch.zeros(len(tensors), 3, *canvas)
        for i, t in enumerate(tensors):
            t = t[:, : canvas[0], : canvas[1]]
            batch[i, :, : t.shape[1], : t.shape[2]] = t
        return batch

    def _image_tensor(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        image = image.resize(vqa_style_size(*image.size, self.min_size, self.max_size), Image.BILINEAR)
        array = np.asarray(pad_to_canvas(image, self.min_size, self.max_size), dtype=np.float32) / 255.0
        x = torch.from_numpy(array).permute(2, 0, 1)
        return (x - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)

    def __call__(self, records: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        for key in (self.text_field, self.id_field if self.features else self.image_field):
            if key not in records[0]:
                raise KeyError(f"CLIP-ViL reads record field {key!r}; records have {sorted(records[0])}"
                               + ("" if self.features else " (for pre-extracted features set features=<folder>)"))
        inputs = self.text([r[self.text_field] for r in records])
        if self.features is not None:
            feats, mask = stack_features([self.features.load(r[self.id_field]) for r in records])
            inputs.update(visual_feats=feats, visual_mask=mask)
        else:
            inputs["pixel_values"] = self.pixels([r[self.image_field] for r in records])
        return inputs
