"""Karpathy-split image-caption JSON (``dataset_flickr30k.json``, ``dataset_coco.json``).

Format::

    {"images": [{"filename": "1000092795.jpg", "filepath": "train2014"?, "split": "train",
                 "imgid": 0, "sentences": [{"raw": "Two young guys ...", "sentid": 0}, ...]}, ...]}

The image lives at ``image_root / filepath / filename`` (``filepath`` only when present).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.errors import DataFormatError
from unipt.data.io import get_field, read_json
from unipt.data.retrieval import RetrievalDataset

__all__ = ["KARPATHY_SPLITS", "load_karpathy"]

log = logging.getLogger(__name__)

KARPATHY_SPLITS = ("train", "val", "test", "restval")
_EXPECTED = '{"images": [{"filename", "split", "sentences": [{"raw"}], ...}]}'


def load_karpathy(
    split: str,
    *,
    path: str | PathLike[str],
    image_root: str | PathLike[str] | None = None,
    restval_as_train: bool = True,
    max_captions_per_image: int | None = None,
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RetrievalDataset:
    """Load one split of a Karpathy-split JSON as an image-caption retrieval dataset.

    Args:
        split: ``train``, ``val``, ``test`` or ``restval``.
        path: the ``dataset_*.json`` file.
        image_root: folder holding the images (default: the JSON file's folder).
        restval_as_train: include ``restval`` images in ``train`` (the usual COCO 113k training set).
        max_captions_per_image: keep only the first N captions of each image (the dropped count is logged).
        transform, load_images: see :class:`~unipt.data.base.RecordDataset`.

    Items: ``image_path``, ``image_id`` (``imgid``, else ``cocoid``, else position), ``filename``,
    ``split`` (the image's own split). Captions: ``text`` (the ``raw`` sentence), ``sentence_id``.
    """
    if split not in KARPATHY_SPLITS:
        raise ValueError(f"unknown Karpathy split {split!r}; expected one of {KARPATHY_SPLITS}")
    data = read_json(path, "Karpathy-split caption JSON", _EXPECTED)
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    images = get_field(data, "images", path, "top level", list, "the file must be a Karpathy dataset_*.json")
    wanted = {split} | ({"restval"} if split == "train" and restval_as_train else set())
    items: list[dict[str, Any]] = []
    captions: list[dict[str, Any]] = []
    truncated = 0
    for i, image in enumerate(images):
        where = f"images[{i}]"
        image_split = get_field(image, "split", path, where, str)
        if image_split not in KARPATHY_SPLITS:
            raise DataFormatError(
                path,
                record=where,
                field="split",
                problem=f"unknown split {image_split!r}",
                expected=f"one of {KARPATHY_SPLITS}",
            )
        filename = get_field(image, "filename", path, where, str)
        sentences = get_field(image, "sentences", path, where, list)
        if image_split not in wanted:
            continue
        subdir = image.get("filepath") or ""
        image_id = image.get("imgid", image.get("cocoid", i))
        item_index = len(items)
        items.append(
            {
                "image_path": str(root / subdir / filename),
                "image_id": image_id,
                "filename": filename,
                "split": image_split,
            }
        )
        if max_captions_per_image is not None and len(sentences) > max_captions_per_image:
            truncated += len(sentences) - max_captions_per_image
            sentences = sentences[:max_captions_per_image]
        for j, sentence in enumerate(sentences):
            raw = get_field(sentence, "raw", path, f"{where}.sentences[{j}]", str)
            captions.append(
                {"text": raw.strip(), "item_index": item_index, "sentence_id": sentence.get("sentid", j)}
            )
    if truncated:
        log.info(
            "%s [%s]: dropped %d captions beyond max_captions_per_image=%d",
            path,
            split,
            truncated,
            max_captions_per_image,
        )
    return RetrievalDataset(
        items,
        captions,
        transform=transform,
        load_images=load_images,
        name="karpathy",
        split=split,
        meta={"source": str(path), "dropped_captions": truncated},
    )
