"""MSVD (YouTube2Text) text-video retrieval.

* captions: ``AllVideoDescriptions.txt`` with one ``<video_id> <caption>`` per line (``#`` lines are
  comments), or CLIP4Clip's ``raw-captions.pkl`` (``{video_id: [[token, ...], ...]}``, read with the
  restricted unpickler);
* split lists: ``train_list.txt`` / ``val_list.txt`` / ``test_list.txt``, one video id per line;
* frames: ``frames_root/<video_id>/*.jpg``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.errors import DataFileNotFoundError, DataFormatError
from unipt.data.formats.safe_pickle import safe_load_pickle
from unipt.data.formats.video_frames import attach_frames
from unipt.data.io import read_text_lines
from unipt.data.retrieval import RetrievalDataset

__all__ = ["load_msvd", "read_msvd_captions"]

log = logging.getLogger(__name__)

_SPLITS = ("train", "val", "test")
_CAPTION_FILES = ("AllVideoDescriptions.txt", "raw-captions.pkl")


def read_msvd_captions(path: str | PathLike[str]) -> dict[str, list[str]]:
    """Read MSVD captions (text or pickle format) into ``{video_id: [caption, ...]}`` (file order)."""
    p = Path(path)
    out: dict[str, list[str]] = {}
    if p.suffix in (".pkl", ".pickle", ".p"):
        data = safe_load_pickle(p, "MSVD caption pickle (raw-captions.pkl)")
        if not isinstance(data, dict):
            raise DataFormatError(
                p,
                record="top level",
                problem=f"got {type(data).__name__}",
                expected="a dict {video_id: [[token, ...], ...]}",
            )
        for vid, caps in data.items():
            if not isinstance(caps, list):
                raise DataFormatError(
                    p,
                    record=f"video {vid!r}",
                    problem=f"got {type(caps).__name__}",
                    expected="a list of captions (token lists or strings)",
                )
            texts = []
            for j, cap in enumerate(caps):
                if isinstance(cap, str):
                    texts.append(cap.strip())
                elif isinstance(cap, list) and all(isinstance(t, str) for t in cap):
                    texts.append(" ".join(cap))
                else:
                    raise DataFormatError(
                        p,
                        record=f"video {vid!r} caption {j}",
                        problem=repr(cap)[:60],
                        expected="a list of token strings or a string",
                    )
            out[str(vid)] = texts
        return out
    for lineno, line in read_text_lines(p, "MSVD caption file (AllVideoDescriptions.txt)"):
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DataFormatError(
                p,
                record=f"line {lineno}",
                field="caption",
                problem="no caption after the id",
                expected="'<video_id> <caption>'",
                hint="remove or complete the line",
            )
        out.setdefault(parts[0], []).append(parts[1].strip())
    return out


def load_msvd(
    split: str,
    *,
    root: str | PathLike[str] | None = None,
    captions: str | PathLike[str] | None = None,
    split_list: str | PathLike[str] | None = None,
    frames_root: str | PathLike[str] | None = None,
    max_frames: int = 12,
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RetrievalDataset:
    """Load one MSVD split as a video-caption retrieval dataset (all captions of each video).

    Args:
        split: ``train``, ``val`` or ``test``.
        root: folder with ``AllVideoDescriptions.txt`` (or ``raw-captions.pkl``) and ``<split>_list.txt``.
        captions, split_list: explicit file paths (override ``root``).
        frames_root, max_frames: see :func:`~unipt.data.formats.msrvtt.load_msrvtt`.

    Items: ``video_id`` (+ ``frames``, ``frame_mask``, ``num_frames``). Captions: ``text``, ``sentence_id``
    (position among the video's captions).
    """
    if split not in _SPLITS:
        raise ValueError(f"unknown MSVD split {split!r}; expected one of {_SPLITS}")
    base = Path(root) if root is not None else None
    if captions is None:
        if base is None:
            raise ValueError("load_msvd needs root= or captions=")
        found = [base / n for n in _CAPTION_FILES if (base / n).is_file()]
        if not found:
            raise DataFileNotFoundError(
                base / _CAPTION_FILES[0],
                "MSVD caption file",
                f"put one of {_CAPTION_FILES} in root or pass captions=",
            )
        captions = found[0]
    if split_list is None:
        if base is None:
            raise ValueError("load_msvd needs root= or split_list=")
        split_list = base / f"{split}_list.txt"
    by_video = read_msvd_captions(captions)
    video_ids = [line for _, line in read_text_lines(split_list, f"MSVD {split} id list ({split}_list.txt)")]

    items: list[dict[str, Any]] = []
    caption_records: list[dict[str, Any]] = []
    without = [vid for vid in video_ids if not by_video.get(vid)]
    if without:
        log.warning(
            "MSVD %s: %d listed videos have no caption in %s (first: %s); kept without captions",
            split,
            len(without),
            captions,
            without[0],
        )
    for vid in video_ids:
        for j, text in enumerate(by_video.get(vid, [])):
            caption_records.append({"text": text, "item_index": len(items), "sentence_id": j})
        items.append({"video_id": vid})
    if frames_root is not None:
        attach_frames(items, frames_root, max_frames)
    return RetrievalDataset(
        items,
        caption_records,
        transform=transform,
        load_images=load_images,
        name="msvd",
        split=split,
        meta={"source": str(captions), "videos_without_captions": len(without), "max_frames": max_frames},
    )
