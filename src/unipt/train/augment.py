"""Training-time augmentation in the collator: each tower's preprocessing wrapped by the recipe.

``data.options.augment`` (a dict of :class:`~unipt.data.augment.AugmentConfig` fields) turns it on.
The training loader then augments images and captions; evaluation loaders only apply the recipe's
deterministic part (VSE-infinity: the ``S x S`` resize without crop). An activation cache cannot store
augmented inputs, so the cache refuses such a run (``unipt.cache.identity.check_cacheable``): the
augmented recipe pays for a live backbone forward every epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from unipt.backbones import Backbone
from unipt.batch import TaskLabels
from unipt.data.augment import AugmentConfig, augment_words, random_crop_flip, squash
from unipt.preprocess import ImagePreprocessor, TextPreprocessor
from unipt.train.batching import Collator


@dataclass
class AugmentedImages:
    """An :class:`ImagePreprocessor` behind the recipe's crop / flip (training) and squash resize."""

    preprocess: ImagePreprocessor
    config: AugmentConfig
    train: bool

    @property
    def size(self) -> int:
        return self.preprocess.size

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        images = [random_crop_flip(i, self.config) if self.train else i for i in images]
        if self.config.image_resize == "squash":
            images = [squash(i, self.preprocess.size) for i in images]  # the centre crop then keeps all of it
        return self.preprocess(images)


@dataclass
class AugmentedCaptions:
    """A :class:`TextPreprocessor` whose training captions go through caption augmentation."""

    preprocess: TextPreprocessor
    config: AugmentConfig
    train: bool

    def __post_init__(self) -> None:
        tokenizer = self.preprocess.tokenizer
        specials = (tokenizer.mask_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id)
        if self.train and (not getattr(tokenizer, "is_fast", False) or None in specials):
            raise ValueError("caption augmentation needs a fast BERT-style tokenizer (word ids, [MASK], [CLS], "
                             f"[SEP]); {type(tokenizer).__name__} is not one: set data.options.augment.caption_prob=0")

    @property
    def max_length(self) -> int:
        return self.preprocess.max_length

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        if not self.train or self.config.caption_prob == 0:
            return self.preprocess(texts)
        tokenizer = self.preprocess.tokenizer
        rows = []
        for text in texts:
            enc = tokenizer(text, add_special_tokens=False)
            words: dict[int, list[int]] = {}
            for piece, word in zip(enc["input_ids"], enc.word_ids(), strict=True):
                words.setdefault(word, []).append(piece)
            ids = augment_words(list(words.values()), self.config, tokenizer.mask_token_id, len(tokenizer))
            rows.append([tokenizer.cls_token_id, *ids[: self.max_length - 2], tokenizer.sep_token_id])
        length = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), length), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


def augmented_collators(towers: dict[str, tuple[str, Backbone]], answer_index: dict[str, int] | None,
                        augment: dict[str, Any], task_labels: TaskLabels | None = None) -> tuple[Collator, Collator]:
    """(training collator, evaluation collator) for ``data.options.augment``."""
    try:
        config = AugmentConfig(**augment)
    except TypeError as err:
        fields = [f.name for f in dataclasses.fields(AugmentConfig)]
        raise ValueError(f"data.options.augment: {err}; known fields: {fields}") from err

    def wrap(train: bool) -> Collator:
        wrapped = {}
        for name, (field, backbone) in towers.items():
            prep: Any = backbone.preprocess
            if isinstance(prep, ImagePreprocessor):
                prep = AugmentedImages(prep, config, train)
            elif isinstance(prep, TextPreprocessor):
                prep = AugmentedCaptions(prep, config, train)
            wrapped[name] = (field, dataclasses.replace(backbone, preprocess=prep))
        return Collator(wrapped, answer_index, task_labels)

    return wrap(True), wrap(False)
