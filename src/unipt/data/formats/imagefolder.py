"""Image classification folder tree: ``<folder>/<class_name>/**/<image>``; classes sorted by name."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.base import RecordDataset
from unipt.data.errors import DataFormatError
from unipt.data.io import require_dir

__all__ = ["IMAGE_EXTENSIONS", "load_imagefolder"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def load_imagefolder(
    split: str,
    *,
    root: str | PathLike[str] | None = None,
    path: str | PathLike[str] | None = None,
    class_names: Sequence[str] | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RecordDataset:
    """Load an image-folder split: ``path``, or ``root/<split>`` when that folder exists, else ``root``.

    Args:
        class_names: fixed class list (label = position); default: the sorted sub-folder names. Pass the
            training classes for other splits so labels agree.
        extensions: image file suffixes (case-insensitive); other files are skipped and counted
            (``meta["skipped_files"]``, logged).

    Records: ``image_path``, ``label``, ``class_name``. ``meta["class_names"]`` lists the classes.
    """
    if path is None:
        if root is None:
            raise ValueError("load_imagefolder needs root= or path=")
        folder = Path(root) / split if (Path(root) / split).is_dir() else Path(root)
    else:
        folder = Path(path)
    require_dir(folder, "image folder (one sub-folder per class)")
    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    names = list(class_names) if class_names is not None else found
    unknown = [d for d in found if d not in names]
    if unknown:
        raise DataFormatError(
            folder,
            record=f"sub-folder {unknown[0]!r}",
            field="class_names",
            problem="class folder not in class_names",
            expected=f"one of {names}",
        )
    if not names:
        raise DataFormatError(
            folder, problem="no class sub-folders", expected="<folder>/<class>/<image files>"
        )
    suffixes = {e.lower() for e in extensions}
    records = []
    skipped: list[str] = [str(p) for p in folder.iterdir() if p.is_file()]
    for label, name in enumerate(names):
        class_dir = folder / name
        if not class_dir.is_dir():
            log.warning("%s: class %r has no folder; it gets label %d and no images", folder, name, label)
            continue
        for p in sorted(class_dir.rglob("*")):
            if not p.is_file():
                continue
            if p.suffix.lower() in suffixes and not p.name.startswith("."):
                records.append({"image_path": str(p), "label": label, "class_name": name})
            else:
                skipped.append(str(p))
    if skipped:
        log.info("%s: skipped %d non-image files (first: %s)", folder, len(skipped), skipped[0])
    return RecordDataset(
        records,
        transform=transform,
        load_images=load_images,
        name="imagefolder",
        split=split,
        meta={"source": str(folder), "class_names": names, "skipped_files": skipped},
    )
