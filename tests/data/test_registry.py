"""load_dataset / list_datasets."""

from __future__ import annotations

import pytest

from unipt.data import list_datasets, load_dataset
from unipt.data.errors import UnknownDatasetError

FORMATS = [
    "gqa",
    "image_caption_jsonl",
    "imagefolder",
    "karpathy",
    "msrvtt",
    "msvd",
    "refcoco",
    "refcoco+",
    "refcocog",
    "text_csv",
    "text_jsonl",
    "vqa",
]


def test_list_datasets() -> None:
    assert list_datasets("packaged") == ["fashion_mnist", "rotten_tomatoes", "tuxpaint"]
    assert list_datasets("format") == FORMATS
    assert list_datasets() == sorted(FORMATS + ["fashion_mnist", "rotten_tomatoes", "tuxpaint"])


def test_unknown_name_lists_known_and_close_matches() -> None:
    with pytest.raises(UnknownDatasetError) as info:
        load_dataset("fashion-mnst", "train")
    msg = str(info.value)
    assert "unknown dataset 'fashion-mnst'" in msg and "Did you mean 'fashion_mnist'?" in msg
    assert "Known datasets: fashion_mnist, gqa," in msg
    assert isinstance(info.value, ValueError)
