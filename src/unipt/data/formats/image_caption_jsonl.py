"""Image-caption pairs as JSON lines: ``{"image": "imgs/cat.jpg", "caption": "a cat"}``.

Relative image paths are resolved against ``image_root`` (default: the JSONL file's folder). Lines that
name the same image become several captions of one retrieval item. ``caption`` may also be a list.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.errors import DataFormatError
from unipt.data.io import get_field, read_jsonl
from unipt.data.retrieval import RetrievalDataset

__all__ = ["load_image_caption_jsonl"]


def load_image_caption_jsonl(
    split: str,
    *,
    path: str | PathLike[str] | None = None,
    root: str | PathLike[str] | None = None,
    image_field: str = "image",
    caption_field: str = "caption",
    image_root: str | PathLike[str] | None = None,
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RetrievalDataset:
    """Load an image-caption JSONL (``path``, or ``root/<split>.jsonl``) as a retrieval dataset.

    Items: ``image_path``, ``image_id`` (the path as written in the file). Captions: ``text``, ``line``.
    """
    if path is None:
        if root is None:
            raise ValueError("load_image_caption_jsonl needs path= or root=")
        path = Path(root) / f"{split}.jsonl"
    p = Path(path)
    base = Path(image_root) if image_root is not None else p.parent
    expected = f'{{"{image_field}": "path/to/image.jpg", "{caption_field}": "text"}}'
    items: list[dict[str, Any]] = []
    item_of: dict[str, int] = {}
    captions: list[dict[str, Any]] = []
    for line, obj in read_jsonl(p, "image-caption JSONL file", expected):
        loc = f"line {line}"
        image = get_field(obj, image_field, p, loc, str)
        caption = get_field(obj, caption_field, p, loc, (str, list))
        texts = [caption] if isinstance(caption, str) else caption
        if not texts or not all(isinstance(t, str) for t in texts):
            raise DataFormatError(
                p,
                record=loc,
                field=caption_field,
                problem=f"got {caption!r:.60}",
                expected="a string or a non-empty list of strings",
            )
        resolved = str(Path(image) if Path(image).is_absolute() else base / image)
        if resolved not in item_of:
            item_of[resolved] = len(items)
            items.append({"image_path": resolved, "image_id": image})
        for t in texts:
            captions.append({"text": t.strip(), "item_index": item_of[resolved], "line": line})
    return RetrievalDataset(
        items,
        captions,
        transform=transform,
        load_images=load_images,
        name="image_caption_jsonl",
        split=split,
        meta={"source": str(p)},
    )
