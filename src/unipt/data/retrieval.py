"""Cross-modal retrieval datasets: a list of items (images or videos) and a list of captions.

Iterating the dataset yields one record per caption (the item's fields merged with the caption's),
which is what contrastive training wants. Evaluation encodes every item once (:meth:`items_view`)
and every caption once (:attr:`captions`) and scores with :attr:`caption_to_item`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from unipt.data.base import Record, RecordDataset

__all__ = ["RetrievalDataset"]


class RetrievalDataset(RecordDataset):
    """Caption-level view over ``items`` with a caption -> item index.

    Args:
        items: one record per image / video (``image_path`` or ``frames``, ``image_id`` ...).
        captions: one record per caption, each with ``text`` and ``item_index`` (index into ``items``).
        **kwargs: forwarded to :class:`RecordDataset` (``transform``, ``load_images``, ``name``...).

    Attributes:
        items: the item records.
        caption_records: the caption records.
        captions: the caption strings, in order.
        caption_to_item: ``caption_to_item[c]`` is the index of the item caption ``c`` describes.
        item_to_captions: ``item_to_captions[i]`` lists the caption indices of item ``i``.
    """

    def __init__(self, items: Sequence[Record], captions: Sequence[Record], **kwargs: Any) -> None:
        self.items: list[Record] = list(items)
        self.caption_records: list[Record] = list(captions)
        self.caption_to_item: list[int] = [int(c["item_index"]) for c in self.caption_records]
        self.item_to_captions: list[list[int]] = [[] for _ in self.items]
        for c_idx, i_idx in enumerate(self.caption_to_item):
            if not 0 <= i_idx < len(self.items):
                raise IndexError(
                    f"caption {c_idx} points to item {i_idx}, but there are {len(self.items)} items"
                )
            self.item_to_captions[i_idx].append(c_idx)
        merged = [
            {**self.items[c["item_index"]], **c, "caption_index": k}
            for k, c in enumerate(self.caption_records)
        ]
        super().__init__(merged, **kwargs)

    @property
    def captions(self) -> list[str]:
        """All caption strings, aligned with :attr:`caption_to_item`."""
        return [c["text"] for c in self.caption_records]

    # Image-retrieval spelling of the same index, for readability at call sites.
    @property
    def caption_to_image(self) -> list[int]:
        """Alias of :attr:`caption_to_item`."""
        return self.caption_to_item

    @property
    def image_to_captions(self) -> list[list[int]]:
        """Alias of :attr:`item_to_captions`."""
        return self.item_to_captions

    def items_view(self, transform: Callable[[Any], Any] | None = None) -> RecordDataset:
        """A dataset over the items only (each image / video once), for encoding them in evaluation."""
        return RecordDataset(
            self.items,
            transform=transform if transform is not None else self.transform,
            load_images=self.load_images,
            image_loader=self.image_loader,
            name=self.name,
            split=self.split,
            meta=self.meta,
        )
