"""Pre-extracted video frames: ``frames_root/<video_id>/*.jpg``, sampled uniformly with a mask."""

from __future__ import annotations

import re
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from unipt.data.errors import DataFileNotFoundError

__all__ = ["FRAME_EXTENSIONS", "attach_frames", "list_frames", "sample_frames"]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def list_frames(video_dir: str | PathLike[str]) -> list[str]:
    """All frame image paths of one video folder, in natural (numeric-aware) order."""
    d = Path(video_dir)
    names = [p.name for p in d.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS]
    return [str(d / n) for n in sorted(names, key=_natural_key)]


def sample_frames(frames: list[str], max_frames: int) -> tuple[list[str], list[int]]:
    """Pick at most ``max_frames`` frames spread evenly over the video.

    Returns the chosen paths (at most ``max_frames``, first and last frame included when sampling) and
    a mask of length ``max_frames`` with 1 for each real frame and 0 for padding.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    n = len(frames)
    if n > max_frames:
        idx = np.linspace(0, n - 1, num=max_frames).round().astype(int)
        chosen = [frames[int(i)] for i in idx]
    else:
        chosen = list(frames)
    mask = [1] * len(chosen) + [0] * (max_frames - len(chosen))
    return chosen, mask


def attach_frames(items: Iterable[dict[str, Any]], frames_root: str | PathLike[str], max_frames: int) -> None:
    """Add ``frames``, ``frame_mask`` and ``num_frames`` to every item (keyed by ``video_id``) in place.

    Raises DataFileNotFoundError naming the first video whose frame folder is missing or empty and how
    many videos are affected (no video is skipped silently).
    """
    root = Path(frames_root)
    if not root.is_dir():
        raise DataFileNotFoundError(
            root, "frames root folder", "extract frames to <frames_root>/<video_id>/*.jpg (e.g. with ffmpeg)"
        )
    missing: list[str] = []
    for item in items:
        vdir = root / str(item["video_id"])
        frames = list_frames(vdir) if vdir.is_dir() else []
        if not frames:
            missing.append(str(vdir))
            continue
        item["frames"], item["frame_mask"] = sample_frames(frames, max_frames)
        item["num_frames"] = len(frames)
    if missing:
        raise DataFileNotFoundError(
            missing[0],
            f"frame folder (with .jpg/.png frames) of {len(missing)} video(s), first",
            "extract the frames of every listed video, or fix frames_root",
        )
