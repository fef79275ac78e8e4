"""Activation cache: a store of the taps frozen backbones produced, so training can skip the backbones.

The store knows nothing of run configs or the trainer: :func:`~unipt.cache.build.write_cache` writes
sharded safetensors + ``manifest.json`` from any :class:`~unipt.cache.source.TapSource`;
:func:`~unipt.cache.plan.estimate_cache` estimates size and time first; :class:`CachedDataset` +
:class:`CacheCollator` read it back; :func:`verify_cache` checks every shard. Building a cache from a
run config, and training from one, lives with training (:mod:`unipt.train.caching`).
"""

from unipt.cache.build import write_cache
from unipt.cache.collate import CacheCollator, collate_taps
from unipt.cache.dataset import CachedDataset
from unipt.cache.errors import CacheCorrupted, CacheError, CacheIncomplete, CacheMismatch, CacheRefused
from unipt.cache.plan import estimate_cache, format_plan
from unipt.cache.source import TapSource
from unipt.cache.verify import verify_cache

__all__ = [
    "CacheCollator", "CacheCorrupted", "CacheError", "CacheIncomplete", "CacheMismatch", "CacheRefused",
    "CachedDataset", "TapSource", "collate_taps", "estimate_cache", "format_plan", "verify_cache", "write_cache",
]
