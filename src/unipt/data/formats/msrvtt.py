"""MSR-VTT text-video retrieval in the CLIP4Clip file layout.

* ``MSRVTT_data.json``: ``{"videos": [{"video_id": "video0", "split": "train"}, ...],
  "sentences": [{"video_id": "video0", "caption": "a man ...", "sen_id": 0}, ...]}``
* ``MSRVTT_train.9k.csv`` (or ``7k``): a ``video_id`` column -> training videos (all their captions).
* ``MSRVTT_JSFUSION_test.csv``: columns ``key,vid_key,video_id,sentence`` -> the 1k-A test pairs.
* frames: ``frames_root/<video_id>/*.jpg``.

``train`` uses the training CSV when it exists (else the JSON ``split == "train"`` videos), ``test`` the
JSFUSION CSV when it exists (else JSON ``split == "test"``), ``val`` the JSON ``split == "validate"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.errors import DataFileNotFoundError
from unipt.data.formats.video_frames import attach_frames
from unipt.data.io import get_field, read_csv_rows, read_json
from unipt.data.retrieval import RetrievalDataset

__all__ = ["load_msrvtt"]

log = logging.getLogger(__name__)

_JSON_EXPECTED = '{"videos": [{"video_id", "split"}], "sentences": [{"video_id", "caption"}]}'
_JSON_SPLIT = {"train": "train", "val": "validate", "test": "test"}


def _read_sentences(path: Path) -> tuple[dict[str, Any], dict[str, list[tuple[str, Any]]]]:
    data = read_json(path, "MSR-VTT annotation JSON (MSRVTT_data.json)", _JSON_EXPECTED)
    sentences = get_field(data, "sentences", path, "top level", list)
    by_video: dict[str, list[tuple[str, Any]]] = {}
    for i, s in enumerate(sentences):
        vid = get_field(s, "video_id", path, f"sentences[{i}]", str)
        caption = get_field(s, "caption", path, f"sentences[{i}]", str)
        by_video.setdefault(vid, []).append((caption.strip(), s.get("sen_id", i)))
    return data, by_video


def _json_split_videos(data: dict[str, Any], path: Path, json_split: str) -> list[str]:
    videos = get_field(data, "videos", path, "top level", list)
    out = []
    for i, v in enumerate(videos):
        vid = get_field(v, "video_id", path, f"videos[{i}]", str)
        split = get_field(v, "split", path, f"videos[{i}]", str, "use a train/test CSV or add 'split'")
        if split == json_split:
            out.append(vid)
    return out


def load_msrvtt(
    split: str,
    *,
    root: str | PathLike[str] | None = None,
    data_json: str | PathLike[str] | None = None,
    train_csv: str | PathLike[str] | None = None,
    test_csv: str | PathLike[str] | None = None,
    frames_root: str | PathLike[str] | None = None,
    max_frames: int = 12,
    transform: Callable[[Any], Any] | None = None,
    load_images: bool = True,
) -> RetrievalDataset:
    """Load one MSR-VTT split as a video-caption retrieval dataset.

    Args:
        split: ``train``, ``val`` or ``test``.
        root: folder with the default file names (``MSRVTT_data.json``, ``MSRVTT_train.9k.csv``,
            ``MSRVTT_JSFUSION_test.csv``); each file can also be given explicitly.
        frames_root: folder of per-video frame folders; None gives metadata-only records (no frames).
        max_frames: frames sampled uniformly per video; ``frame_mask`` marks real frames vs padding.

    Items: ``video_id``, and with frames ``frames``, ``frame_mask``, ``num_frames``.
    Captions: ``text``, ``sentence_id``.
    """
    if split not in _JSON_SPLIT:
        raise ValueError(f"unknown MSR-VTT split {split!r}; expected one of {tuple(_JSON_SPLIT)}")
    base = Path(root) if root is not None else None

    def default(given: str | PathLike[str] | None, name: str) -> tuple[Path | None, bool]:
        if given is not None:
            return Path(given), True
        return (base / name if base is not None else None), False

    json_path, _ = default(data_json, "MSRVTT_data.json")
    csv_path, explicit = default(
        test_csv if split == "test" else train_csv,
        "MSRVTT_JSFUSION_test.csv" if split == "test" else "MSRVTT_train.9k.csv",
    )
    use_csv = split != "val" and csv_path is not None and (explicit or csv_path.is_file())

    # video_id -> list of (caption, sentence_id)
    pairs: dict[str, list[tuple[str, Any]]] = {}
    if split == "test" and use_csv:
        assert csv_path is not None
        for line, row in read_csv_rows(
            csv_path, "MSR-VTT test CSV (MSRVTT_JSFUSION_test.csv)", ["video_id", "sentence"]
        ):
            sentence = get_field(row, "sentence", csv_path, f"line {line}", str)
            pairs.setdefault(row["video_id"], []).append((sentence.strip(), row.get("key") or line))
    else:
        if json_path is None:
            raise DataFileNotFoundError(
                "MSRVTT_data.json", "MSR-VTT annotation JSON", "pass root= or data_json="
            )
        data, by_video = _read_sentences(json_path)
        if use_csv:
            assert csv_path is not None
            video_ids = [
                row["video_id"]
                for _, row in read_csv_rows(
                    csv_path, "MSR-VTT training CSV (MSRVTT_train.9k.csv)", ["video_id"]
                )
            ]
        else:
            video_ids = _json_split_videos(data, json_path, _JSON_SPLIT[split])
        for vid in video_ids:
            pairs.setdefault(vid, []).extend(by_video.get(vid, []))

    without = [vid for vid, caps in pairs.items() if not caps]
    if without:
        log.warning(
            "MSR-VTT %s: %d videos have no caption (first: %s); kept without captions",
            split,
            len(without),
            without[0],
        )
    items: list[dict[str, Any]] = []
    captions: list[dict[str, Any]] = []
    for vid, caps in pairs.items():
        for text, sid in caps:
            captions.append({"text": text, "item_index": len(items), "sentence_id": sid})
        items.append({"video_id": vid})
    if frames_root is not None:
        attach_frames(items, frames_root, max_frames)
    return RetrievalDataset(
        items,
        captions,
        transform=transform,
        load_images=load_images,
        name="msrvtt",
        split=split,
        meta={
            "source": str(csv_path if use_csv else json_path),
            "max_frames": max_frames,
            "videos_without_captions": len(without),
        },
    )
