"""Activation cache: run the frozen backbones once, store the taps UniPT reads, train from them.

``build_cache(config, out)`` writes sharded safetensors + ``manifest.json``; ``plan_cache`` estimates size
and time first; ``CachedDataset`` + ``CacheCollator`` read it; ``use_cache`` (called by the Trainer when
``train.cache_dir`` is set) swaps a run's splits for their caches after checking they fit the run.
"""

from unipt.cache.build import build_cache
from unipt.cache.collate import CacheCollator, CachedTaps, collate_taps
from unipt.cache.dataset import CachedDataset
from unipt.cache.errors import CacheCorrupted, CacheError, CacheIncomplete, CacheMismatch, CacheRefused
from unipt.cache.plan import format_plan, plan_cache
from unipt.cache.runtime import use_cache
from unipt.cache.verify import verify_cache

__all__ = [
    "CacheCollator", "CacheCorrupted", "CacheError", "CacheIncomplete", "CacheMismatch", "CacheRefused",
    "CachedDataset", "CachedTaps", "build_cache", "collate_taps", "format_plan", "plan_cache", "use_cache",
    "verify_cache",
]
