"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (IDX files, parsed with numpy).

``train`` / ``val`` are a seeded stratified split of the official 60k training images; ``test`` is the
official 10k test set. Records keep the index into the official file; the 28x28 grey image is built on
access (as RGB).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unipt.data.base import RecordDataset
from unipt.data.errors import DataFormatError
from unipt.data.packaged.cache import ensure_deb_path
from unipt.data.packaged.idx import read_idx
from unipt.data.splits import select_split

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_PACKAGE", "fetch_fashion_mnist", "load_fashion_mnist"]

FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_RELATIVE = "usr/share/datasets/fashion-mnist"
_FILES = {"train": "train", "test": "t10k"}


def fetch_fashion_mnist(fetch: bool = True) -> Path:
    """The folder with the four ``*-ubyte.gz`` files (system install, cache, or freshly fetched)."""
    return ensure_deb_path(FASHION_MNIST_PACKAGE, _RELATIVE, fetch=fetch)


@lru_cache(maxsize=4)
def _read_pair(folder: str, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = Path(folder) / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = Path(folder) / f"{prefix}-labels-idx1-ubyte.gz"
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataFormatError(
            images_path,
            field="shape",
            problem=f"images {images.shape}, labels {labels.shape}",
            expected="(N, 28, 28) images and (N,) labels",
        )
    bad = np.flatnonzero(labels >= len(FASHION_MNIST_CLASSES))
    if bad.size:
        raise DataFormatError(
            labels_path,
            record=f"index {int(bad[0])}",
            field="label",
            problem=f"label {int(labels[bad[0]])}",
            expected="0..9",
        )
    return images, labels


class FashionImageLoader:
    """Builds the RGB image of a record from the IDX file (picklable: holds only the path)."""

    def __init__(self, folder: str, prefix: str) -> None:
        self.folder = folder
        self.prefix = prefix

    def __call__(self, record: dict[str, Any]) -> Image.Image:
        images, _ = _read_pair(self.folder, self.prefix)
        return Image.fromarray(np.ascontiguousarray(images[record["index"]])).convert("RGB")


def load_fashion_mnist(
    split: str = "train",
    *,
    seed: int = 0,
    val_size: float | int = 0.1,
    limit: int | None = None,
    fetch: bool = True,
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RecordDataset:
    """Fashion-MNIST classification (10 classes, 28x28).

    Args:
        split: ``train``, ``val`` (both from the official training file) or ``test`` (official test file).
        val_size: fraction or count of the 60k training images held out for ``val`` (stratified, seeded).
        limit: keep at most this many records in the split (class-balanced subset).

    Records: ``index`` (position in the official IDX file), ``official_split`` (``train`` / ``test``: which
    file), ``label`` (int), ``class_name``; ``image``
    (RGB ``PIL.Image``) is added on access. ``meta["class_names"]`` lists the 10 classes.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; expected 'train', 'val' or 'test'")
    folder = str(fetch_fashion_mnist(fetch))
    prefix = _FILES["test" if split == "test" else "train"]
    _, labels = _read_pair(folder, prefix)
    label_list = labels.tolist()
    if split == "test":
        chosen = select_split(len(label_list), "all", {}, seed=seed, labels=label_list, limit=limit)
    else:
        chosen = select_split(
            len(label_list),
            split,
            {"val": val_size, "train": None},
            seed=seed,
            labels=label_list,
            limit=limit,
        )
    official = "test" if split == "test" else "train"
    records = [
        {
            "index": i,
            "official_split": official,
            "label": label_list[i],
            "class_name": FASHION_MNIST_CLASSES[label_list[i]],
        }
        for i in chosen
    ]
    return RecordDataset(
        records,
        transform=transform,
        load_images=load_images,
        image_loader=FashionImageLoader(folder, prefix),
        name="fashion_mnist",
        split=split,
        meta={"source": folder, "class_names": list(FASHION_MNIST_CLASSES), "seed": seed},
    )
