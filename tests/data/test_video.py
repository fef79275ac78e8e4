"""MSR-VTT and MSVD video-text retrieval with pre-extracted frames."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from unipt.data import DataFormatError, load_dataset
from unipt.data.errors import DataFileNotFoundError
from unipt.data.formats.video_frames import list_frames, sample_frames


def _frames(root: Path, video_id: str, n: int, write_image: Callable[..., Path]) -> list[str]:
    return [
        str(write_image(root / video_id / f"frame_{k}.jpg", (4, 4), (k * 20, 0, 0))) for k in range(1, n + 1)
    ]


def test_sample_frames_uniform_with_mask() -> None:
    frames = [f"f{k}" for k in range(10)]
    assert sample_frames(frames, 4) == (["f0", "f3", "f6", "f9"], [1, 1, 1, 1])
    assert sample_frames(frames[:2], 4) == (["f0", "f1"], [1, 1, 0, 0])
    with pytest.raises(ValueError):
        sample_frames(frames, 0)


def test_list_frames_natural_order(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    for k in (10, 2, 1):
        write_image(tmp_path / f"frame_{k}.jpg")
    (tmp_path / "notes.txt").write_text("x")
    assert [Path(p).name for p in list_frames(tmp_path)] == ["frame_1.jpg", "frame_2.jpg", "frame_10.jpg"]


@pytest.fixture
def msrvtt(
    tmp_path: Path,
    write_json: Callable[..., Path],
    write_text: Callable[..., Path],
    write_image: Callable[..., Path],
) -> Path:
    root = tmp_path / "msrvtt"
    write_json(
        root / "MSRVTT_data.json",
        {
            "info": {"year": 2016},
            "videos": [
                {
                    "category": 9,
                    "url": "u",
                    "video_id": "video0",
                    "start time": 1.0,
                    "end time": 2.0,
                    "split": "train",
                    "id": 0,
                },
                {"category": 1, "url": "u", "video_id": "video1", "split": "validate", "id": 1},
                {"category": 1, "url": "u", "video_id": "video7020", "split": "test", "id": 7020},
            ],
            "sentences": [
                {"caption": "a man sings", "video_id": "video0", "sen_id": 0},
                {"caption": "a cartoon", "video_id": "video1", "sen_id": 1},
                {"caption": "someone is singing ", "video_id": "video0", "sen_id": 2},
                {"caption": "a dog runs", "video_id": "video7020", "sen_id": 3},
            ],
        },
    )
    write_text(root / "MSRVTT_train.9k.csv", "video_id\nvideo0\nvideo1\n")
    write_text(
        root / "MSRVTT_JSFUSION_test.csv",
        "key,vid_key,video_id,sentence\nret0,msr7020,video7020,a dog runs in the park\n",
    )
    for vid, n in (("video0", 5), ("video1", 2), ("video7020", 3)):
        _frames(root / "frames", vid, n, write_image)
    return root


def test_msrvtt_train_from_csv_with_frames(msrvtt: Path) -> None:
    ds = load_dataset("msrvtt", "train", root=msrvtt, frames_root=msrvtt / "frames", max_frames=3)
    assert [i["video_id"] for i in ds.items] == ["video0", "video1"]
    assert ds.captions == ["a man sings", "someone is singing", "a cartoon"]
    assert ds.caption_to_item == [0, 0, 1]
    v0 = ds.items[0]
    assert [Path(f).name for f in v0["frames"]] == ["frame_1.jpg", "frame_3.jpg", "frame_5.jpg"]
    assert v0["frame_mask"] == [1, 1, 1] and v0["num_frames"] == 5
    assert ds.items[1]["frame_mask"] == [1, 1, 0]
    rec = ds[2]
    assert len(rec["video"]) == 2 and rec["video"][0].mode == "RGB"


def test_msrvtt_test_jsfusion_and_json_splits(msrvtt: Path) -> None:
    test = load_dataset("msrvtt", "test", root=msrvtt)
    assert test.items == [{"video_id": "video7020"}]
    assert test[0] == {
        "video_id": "video7020",
        "text": "a dog runs in the park",
        "item_index": 0,
        "sentence_id": "ret0",
        "caption_index": 0,
    }
    val = load_dataset("msrvtt", "val", root=msrvtt)
    assert val.captions == ["a cartoon"]
    (msrvtt / "MSRVTT_JSFUSION_test.csv").unlink()
    assert load_dataset("msrvtt", "test", root=msrvtt).captions == ["a dog runs"]


def test_msrvtt_errors(msrvtt: Path, write_text: Callable[..., Path], tmp_path: Path) -> None:
    bad = write_text(tmp_path / "bad.csv", "key,vid,sentence\n1,video0,x\n")
    with pytest.raises(DataFormatError, match=r"bad\.csv: record header \(line 1\): field 'video_id'"):
        load_dataset("msrvtt", "test", root=msrvtt, test_csv=bad)
    (msrvtt / "MSRVTT_data.json").write_text('{"sentences": [{"video_id": "video0"}], "videos": []}')
    with pytest.raises(DataFormatError, match=r"MSRVTT_data\.json: record sentences\[0\]: field 'caption'"):
        load_dataset("msrvtt", "train", root=msrvtt)
    with pytest.raises(DataFileNotFoundError, match="frames root folder not found"):
        load_dataset("msrvtt", "test", root=msrvtt, frames_root=tmp_path / "no_such_folder")
    (tmp_path / "frames_elsewhere").mkdir()
    with pytest.raises(DataFileNotFoundError) as info:
        load_dataset("msrvtt", "test", root=msrvtt, frames_root=tmp_path / "frames_elsewhere")
    assert "frame folder" in str(info.value) and "1 video(s)" in str(info.value)
    assert str(tmp_path / "frames_elsewhere" / "video7020") in str(info.value)


def test_msvd_text_and_pickle(
    tmp_path: Path, write_text: Callable[..., Path], write_image: Callable[..., Path]
) -> None:
    root = tmp_path / "msvd"
    write_text(
        root / "AllVideoDescriptions.txt",
        "# Microsoft Research Video Description Corpus\n\n"
        "-4wsuPCjDBc_5_15 a squirrel is eating a peanut\n"
        "-4wsuPCjDBc_5_15 A chipmunk eats.\n"
        "mv89psg6zh4_33_46 A bird in a sink keeps getting water.\n",
    )
    write_text(root / "train_list.txt", "-4wsuPCjDBc_5_15\n")
    write_text(root / "test_list.txt", "mv89psg6zh4_33_46\n")
    _frames(root / "frames", "mv89psg6zh4_33_46", 1, write_image)
    train = load_dataset("msvd", "train", root=root)
    assert train.captions == ["a squirrel is eating a peanut", "A chipmunk eats."]
    assert train.items == [{"video_id": "-4wsuPCjDBc_5_15"}] and train.caption_to_item == [0, 0]
    test = load_dataset("msvd", "test", root=root, frames_root=root / "frames", max_frames=2)
    assert (
        test.items[0]["frame_mask"] == [1, 0] and test[0]["text"] == "A bird in a sink keeps getting water."
    )

    with (root / "raw-captions.pkl").open("wb") as fh:
        pickle.dump({"-4wsuPCjDBc_5_15": [["a", "squirrel"], ["a", "chipmunk"]]}, fh, protocol=2)
    from_pkl = load_dataset("msvd", "train", root=root, captions=root / "raw-captions.pkl")
    assert from_pkl.captions == ["a squirrel", "a chipmunk"]


def test_msvd_errors(tmp_path: Path, write_text: Callable[..., Path]) -> None:
    caps = write_text(tmp_path / "AllVideoDescriptions.txt", "vid1 a caption\nvid2\n")
    write_text(tmp_path / "val_list.txt", "vid1\n")
    with pytest.raises(DataFormatError) as info:
        load_dataset("msvd", "val", root=tmp_path)
    assert (
        str(caps) in str(info.value) and "record line 2" in str(info.value) and "'caption'" in str(info.value)
    )
    caps.write_text("vid1 a caption\n")
    with pytest.raises(DataFileNotFoundError, match="test_list.txt"):
        load_dataset("msvd", "test", root=tmp_path)
