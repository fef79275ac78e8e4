"""What a cache is written from: one split's records and the towers whose taps are stored.

The cache knows nothing of run configs or the trainer: anything with these members can be cached
(:class:`unipt.train.cache_source.CacheSource` builds one from a run config).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from torch.utils.data import Dataset

from unipt.taps import Taps


class TapSource(Protocol):
    """One split to cache.

    Attributes:
        role: ``train``, ``eval`` or ``test`` (the split's folder in the cache).
        dataset: the split's records (a record dataset, see :mod:`unipt.data`).
        towers: the towers whose taps are stored, by name.
        num_workers: DataLoader workers that load and collate records.
    """

    role: str
    dataset: Dataset
    towers: Mapping[str, Any]
    num_workers: int

    def identity(self) -> dict[str, Any]:
        """``{"towers": {name: identity}, "dataset": fingerprint}``, stored in the manifest and checked on read."""
        ...

    def collate(self) -> Callable[[Sequence[dict[str, Any]]], tuple[Any, list[dict[str, Any]]]]:
        """A picklable collate: records -> (what :meth:`tap` reads, each record's targets)."""
        ...

    def tap(self, batch: Any) -> dict[str, Taps]:
        """Run every tower's frozen backbone on one collated batch: ``{tower: Taps}``."""
        ...
