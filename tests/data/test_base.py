"""Record datasets, retrieval indexing and image loading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from unipt.data import DataFormatError
from unipt.data.base import RecordDataset
from unipt.data.errors import DataFileNotFoundError
from unipt.data.images import load_rgb, to_rgb
from unipt.data.retrieval import RetrievalDataset


def test_transparent_pixels_composite_on_white(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    rgba = write_image(tmp_path / "a.png", (2, 1), (0, 0, 255, 0), "RGBA")
    la = write_image(tmp_path / "b.png", (2, 1), (0, 128), "LA")
    im = load_rgb(rgba)
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255)
    assert load_rgb(la).getpixel((1, 0)) == (127, 127, 127)  # black at half alpha on white
    half = Image.new("RGBA", (1, 1), (0, 0, 0, 128))
    assert to_rgb(half).getpixel((0, 0)) == (127, 127, 127)
    assert to_rgb(Image.new("L", (1, 1), 9)).getpixel((0, 0)) == (9, 9, 9)


def test_load_rgb_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match="image file not found"):
        load_rgb(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataFormatError, match="bad.jpg: unreadable image"):
        load_rgb(bad)


def test_record_dataset_lazy_images_and_transform(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    p = write_image(tmp_path / "x.jpg", (5, 4), (0, 255, 0))
    ds = RecordDataset(
        [{"image_path": str(p), "label": 1}], transform=lambda im: im.size, name="n", split="s"
    )
    assert ds[0] == {"image_path": str(p), "label": 1, "image": (5, 4)}
    assert "image" not in ds.records[0]  # raw records stay raw
    raw = RecordDataset(ds.records, load_images=False)
    assert raw[0] == {"image_path": str(p), "label": 1}
    assert (
        list(raw) == [raw[0]] and len(raw) == 1 and repr(ds) == "RecordDataset(name='n', split='s', size=1)"
    )


def test_retrieval_indexing() -> None:
    items = [{"image_id": "a"}, {"image_id": "b"}]
    caps = [{"text": "a1", "item_index": 0}, {"text": "b1", "item_index": 1}, {"text": "a2", "item_index": 0}]
    ds = RetrievalDataset(items, caps, load_images=False)
    assert len(ds) == 3
    assert ds.captions == ["a1", "b1", "a2"]
    assert ds.caption_to_item == ds.caption_to_image == [0, 1, 0]
    assert ds.item_to_captions == ds.image_to_captions == [[0, 2], [1]]
    assert ds[2] == {"image_id": "a", "text": "a2", "item_index": 0, "caption_index": 2}
    assert [r["image_id"] for r in ds.items_view()] == ["a", "b"]
    with pytest.raises(IndexError):
        RetrievalDataset(items, [{"text": "x", "item_index": 5}])
