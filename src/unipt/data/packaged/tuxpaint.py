"""Tux Paint stamps (Debian ``tuxpaint-stamps-default``) as an image-caption retrieval dataset.

Layout: ``usr/share/tuxpaint/stamps/<category>/.../<name>.png`` with ``<name>.txt`` beside it; the
file's first line is the English description, translations follow as ``<locale>.utf8=...`` lines.
Images are RGBA / LA / palette PNGs and are composited on white when loaded.

Not every image file is a captioned PNG stamp; nothing is dropped silently, every kind is counted in
``meta["skipped"]`` and logged:

* ``mirror``: ``<name>_mirror.png`` is the hand-drawn mirrored variant of stamp ``<name>`` (no own
  text file); excluded by default, or kept with the base stamp's caption (``include_mirrors=True``, same
  split as the base stamp);
* ``svg_only``: stamps shipped only as SVG (PIL cannot render them);
* ``no_caption``: PNGs whose text file is missing, empty or starts with a translation line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from unipt.data.packaged.cache import ensure_deb_path
from unipt.data.retrieval import RetrievalDataset
from unipt.data.splits import select_split

__all__ = ["TUXPAINT_PACKAGE", "fetch_tuxpaint", "load_tuxpaint", "read_stamp_caption", "scan_stamps"]

log = logging.getLogger(__name__)

TUXPAINT_PACKAGE = "tuxpaint-stamps-default"
_RELATIVE = "usr/share/tuxpaint/stamps"
_LOCALE_LINE = re.compile(r"^[A-Za-z]{2,3}(_[A-Za-z]{2,3})?(@\w+)?\.utf-?8=", re.IGNORECASE)
_MIRROR = "_mirror"


def _keep_file(path: Path) -> bool:
    """Cache only what the dataset needs: drop the package's sound files (~190 MB)."""
    return path.suffix.lower() not in (".ogg", ".wav")


def fetch_tuxpaint(fetch: bool = True) -> Path:
    """The stamps folder (system install, cache, or freshly fetched into the cache)."""
    return ensure_deb_path(TUXPAINT_PACKAGE, _RELATIVE, fetch=fetch, keep=_keep_file)


def read_stamp_caption(txt: Path) -> str | None:
    """English caption of a stamp: the first line of its text file, whitespace-collapsed; None if absent."""
    if not txt.is_file():
        return None
    raw = txt.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = text.lstrip("\ufeff").splitlines()
    first = " ".join(lines[0].split()) if lines else ""
    if not first or _LOCALE_LINE.match(first):
        return None
    return first


@lru_cache(maxsize=4)
def scan_stamps(root: str) -> tuple[tuple[dict[str, Any], ...], dict[str, list[str]]]:
    """Find every captioned PNG stamp under ``root``.

    Returns ``(stamps, skipped)``: stamps sorted by id, each ``{"image_path", "image_id", "category",
    "subcategory", "text", "mirror_path"?}``; ``skipped`` maps a reason to the affected stamp ids.
    """
    base = Path(root)
    stamps: list[dict[str, Any]] = []
    skipped: dict[str, list[str]] = {"mirror": [], "svg_only": [], "no_caption": []}
    for png in sorted(base.rglob("*.png")):
        rel = png.relative_to(base).with_suffix("").as_posix()
        if png.stem.endswith(_MIRROR) and png.with_name(png.stem[: -len(_MIRROR)] + ".png").is_file():
            continue  # handled with its base stamp below
        caption = read_stamp_caption(png.with_suffix(".txt"))
        mirror = png.with_name(png.stem + _MIRROR + ".png")
        if caption is None:
            skipped["no_caption"].append(rel)
            if mirror.is_file():
                skipped["no_caption"].append(rel + _MIRROR)
            continue
        rel_dir = png.parent.relative_to(base).as_posix()
        stamp = {
            "image_path": str(png),
            "image_id": rel,
            "category": rel.split("/")[0],
            "subcategory": rel_dir,
            "text": caption,
        }
        if mirror.is_file():
            stamp["mirror_path"] = str(mirror)
            skipped["mirror"].append(rel + _MIRROR)
        stamps.append(stamp)
    for svg in sorted(base.rglob("*.svg")):
        if not svg.with_suffix(".png").is_file():
            skipped["svg_only"].append(svg.relative_to(base).with_suffix("").as_posix())
    return tuple(stamps), skipped


def load_tuxpaint(
    split: str = "train",
    *,
    seed: int = 0,
    val_size: float | int = 0.1,
    test_size: float | int = 0.3,
    limit: int | None = None,
    include_mirrors: bool = False,
    fetch: bool = True,
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RetrievalDataset:
    """Tux Paint stamps as an image-caption retrieval dataset (one caption per image).

    Args:
        split: ``train``, ``val``, ``test`` or ``all``. Splits are stratified by category, seeded and
            made per stamp (image and caption always together; a mirror variant joins its stamp).
        val_size, test_size: fraction (float) or number of stamps (int).
        limit: keep at most this many images in the split (a category-balanced subset).
        include_mirrors: add ``*_mirror.png`` variants as extra images carrying the stamp's caption.
        fetch: allow downloading the Debian package into the cache when it is not installed.

    Items: ``image_path``, ``image_id`` (e.g. ``animals/birds/crow``), ``category`` (16 top-level
    folders), ``subcategory`` (folder path), ``label`` (category index into ``meta["class_names"]``).
    Captions: ``text``.
    """
    root = fetch_tuxpaint(fetch)
    stamps, found_skips = scan_stamps(str(root))
    skipped = {k: list(v) for k, v in found_skips.items() if not (include_mirrors and k == "mirror")}
    for reason, ids in skipped.items():
        if ids:
            level = logging.WARNING if reason == "no_caption" else logging.INFO
            log.log(
                level,
                "tuxpaint: %d %s stamps not used as separate captioned images (first: %s)",
                len(ids),
                reason,
                ids[0],
            )
    categories = sorted({s["category"] for s in stamps})
    cat_index = {c: i for i, c in enumerate(categories)}
    pool: list[dict[str, Any]] = []
    for s in stamps:
        item = {k: v for k, v in s.items() if k != "mirror_path"}
        pool.append(item)
        if include_mirrors and "mirror_path" in s:
            pool.append({**item, "image_path": s["mirror_path"], "image_id": s["image_id"] + _MIRROR})
    chosen = select_split(
        len(pool),
        split,
        {"test": test_size, "val": val_size, "train": None},
        seed=seed,
        labels=[p["category"] for p in pool],
        groups=[p["image_id"].removesuffix(_MIRROR) for p in pool],
        limit=limit,
    )
    items, captions = [], []
    for k, idx in enumerate(chosen):
        p = pool[idx]
        items.append(
            {
                "image_path": p["image_path"],
                "image_id": p["image_id"],
                "category": p["category"],
                "subcategory": p["subcategory"],
                "label": cat_index[p["category"]],
            }
        )
        captions.append({"text": p["text"], "item_index": k})
    return RetrievalDataset(
        items,
        captions,
        transform=transform,
        load_images=load_images,
        name="tuxpaint",
        split=split,
        meta={
            "source": str(root),
            "class_names": categories,
            "seed": seed,
            "skipped": skipped,
            "total_stamps": len(stamps),
        },
    )
