"""The one dataset container used by every loader: a list of plain-dict records.

Records hold raw data only (paths, text, integer labels, boxes...). Images are opened lazily in
``__getitem__``: a record with ``image_path`` gains an ``image`` (RGB ``PIL.Image``, passed through the
optional ``transform``), a video record with ``frames`` gains ``video`` (list of transformed frames).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch.utils.data import Dataset

from unipt.data.images import load_rgb

__all__ = ["Record", "RecordDataset"]

Record = dict[str, Any]
ImageLoader = Callable[[Record], Any]


class RecordDataset(Dataset):
    """A map-style dataset of plain-dict records.

    Args:
        records: the raw records (kept as given; ``__getitem__`` returns shallow copies).
        transform: optional callable applied to every loaded image / video frame.
        load_images: when False, ``__getitem__`` returns the raw record without opening files.
        image_loader: optional ``record -> PIL.Image`` used instead of opening ``record["image_path"]``
            (e.g. for images stored in memory).
        name: dataset name, e.g. ``"tuxpaint"``.
        split: split name, e.g. ``"train"``.
        meta: extra information (``class_names``, skip counts, source paths...).
    """

    def __init__(
        self,
        records: Sequence[Record],
        *,
        transform: Callable[[Any], Any] | None = None,
        load_images: bool = True,
        image_loader: ImageLoader | None = None,
        name: str = "",
        split: str = "",
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.records: list[Record] = list(records)
        self.transform = transform
        self.load_images = load_images
        self.image_loader = image_loader
        self.name = name
        self.split = split
        self.meta: dict[str, Any] = dict(meta or {})

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        for i in range(len(self)):
            yield self[i]

    def _image(self, record: Record) -> Any:
        image = self.image_loader(record) if self.image_loader is not None else load_rgb(record["image_path"])
        return self.transform(image) if self.transform is not None else image

    def load(self, record: Record) -> Record:
        """Return a copy of ``record`` with its image / video frames opened (if enabled)."""
        out = dict(record)
        if not self.load_images:
            return out
        if self.image_loader is not None or "image_path" in out:
            out["image"] = self._image(out)
        if "frames" in out:
            frames = [load_rgb(p) for p in out["frames"]]
            out["video"] = [self.transform(f) for f in frames] if self.transform is not None else frames
        return out

    def __getitem__(self, index: int) -> Record:
        return self.load(self.records[index])

    @property
    def class_names(self) -> list[str] | None:
        """Class names for classification datasets (label ``i`` is ``class_names[i]``), else None."""
        return self.meta.get("class_names")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, size={len(self)})"
