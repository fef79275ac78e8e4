"""Errors of the activation cache; each message says what is wrong and what to do."""

from __future__ import annotations

from unipt.errors import UniPTError


class CacheError(UniPTError, RuntimeError):
    """Base class of every activation-cache error."""


class CacheRefused(CacheError, ValueError):
    """The run cannot be cached: its activations are not a fixed function of the data
    (backbone dropout, random augmentation) or a tower does not read taps."""


class CacheMismatch(CacheError, ValueError):
    """The cache was built for another backbone, tap set, preprocessing or dataset."""

    def __init__(self, path: str, differences: list[str]):
        self.differences = differences
        lines = "\n  ".join(differences)
        super().__init__(
            f"activation cache {path} was built for another setup; these fields differ (cache vs this run):\n"
            f"  {lines}\nRebuild it with `unipt cache build` (or point train.cache_dir elsewhere)."
        )


class CacheCorrupted(CacheError):
    """A shard is missing, truncated or does not match its checksum."""


class CacheIncomplete(CacheError):
    """The build stopped before every shard was written."""
