"""Records -> MDETR inputs: DETR's resize rule, padding masks and token maps from character spans."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from unipt.models.mdetr.preprocess import MDETRPreprocessor, resized_shape, token_map

from .mdetr_release import write_tokenizer


@pytest.mark.parametrize(("size", "expected"), [
    ((640, 480), (800, 1066)),    # shorter side -> 800
    ((480, 640), (1066, 800)),
    ((2000, 500), (333, 1332)),   # longer side capped at 1333
    ((800, 800), (800, 800)),
])
def test_resize_rule(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert resized_shape(*size, 800, 1333) == expected


def test_token_map_from_spans() -> None:
    offsets = torch.tensor([[0, 0], [0, 3], [4, 7], [8, 14], [0, 0]])  # <s> the red square </s>
    assert token_map(offsets, [[4, 14]]).tolist() == [0, 0, 1, 1, 0]
    assert token_map(offsets, [[0, 3], [9, 11]]).tolist() == [0, 1, 0, 1, 0]  # a span inside a token
    assert token_map(offsets, []).tolist() == [0, 0, 0, 0, 0]


def test_records_become_padded_inputs_and_token_maps(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    write_tokenizer(tmp_path)
    prep = MDETRPreprocessor(AutoTokenizer.from_pretrained(str(tmp_path)), size=32, max_size=60)
    records = [{"image": Image.new("RGB", (64, 32), (255, 0, 0)), "text": "the red square",
                "tokens_positive": [[4, 14]]},
               {"image": Image.new("RGB", (30, 60)), "text": "blue block"}]
    out = prep(records)
    # Shorter side 32 would make the longer 64 > max_size 60: both become 30 x 60, (h, w) = (30, 60) / (60, 30).
    assert out["pixel_values"].shape == (2, 3, 60, 60)
    assert out["pixel_mask"][0].sum() == 30 * 60 and out["pixel_mask"][0, 30:].sum() == 0
    assert out["pixel_mask"][1, :, 30:].sum() == 0 and out["pixel_mask"][1].sum() == 60 * 30
    assert out["pixel_values"][0, :, 30:].abs().sum() == 0  # zero padding
    assert out["input_ids"][:, 0].tolist() == [0, 0] and out["attention_mask"][1].tolist() == [1, 1, 1, 1, 0]
    # The first box is named by "red square"; the second record has no spans: its whole caption.
    assert out["targets"]["token_map"].tolist() == [[0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
    with pytest.raises(ValueError, match=r'field to "\*"'):
        prep([Image.new("RGB", (8, 8))])
