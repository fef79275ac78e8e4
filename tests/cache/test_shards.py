"""Shard layout round trips for every kind of tap: CNN maps, single-query finals + class tokens, decoder taps."""

from __future__ import annotations

import torch

from unipt.cache.collate import collate_taps
from unipt.cache.shards import ShardReader, concat_packs, layout_of, pack_taps, write_shard
from unipt.taps import Taps


def roundtrip(tmp_path, batches: list[Taps], padding: bool = True) -> list[dict]:
    packs = [pack_taps("t", taps, torch.float32, padding) for taps in batches]
    tensors = concat_packs(packs)
    digest, size = write_shard(tmp_path / "shard-00000.safetensors", tensors)
    layout = {"t": layout_of("t", packs[0], padding)}
    reader = ShardReader(tmp_path / "shard-00000.safetensors", digest, size, layout)
    count = sum(t.hidden[0].shape[0] for t in batches)
    return [reader.record(i)["t"] for i in range(count)]


def test_spatial_maps_final_and_class_index(tmp_path):
    g = torch.Generator().manual_seed(0)
    batches = [Taps([torch.randn(b, 4, 6, 6, generator=g), torch.randn(b, 8, 3, 3, generator=g)], None,
                    torch.randn(b, 5, generator=g), torch.arange(b)) for b in (3, 2)]
    records = roundtrip(tmp_path, batches)
    assert len(records) == 5 and records[0]["mask"] is None
    batch = collate_taps(records)
    assert batch.mask is None and [tuple(h.shape) for h in batch.hidden] == [(5, 4, 6, 6), (5, 8, 3, 3)]
    for j in range(2):
        torch.testing.assert_close(batch.hidden[j], torch.cat([t.hidden[j] for t in batches]))
    torch.testing.assert_close(batch.final, torch.cat([t.final for t in batches]))
    assert batch.class_index.tolist() == [0, 1, 2, 0, 1]


def test_masked_tokens_with_decoder_taps_without_padding(tmp_path):
    g = torch.Generator().manual_seed(1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    taps = Taps([torch.randn(2, 4, 6, generator=g) for _ in range(2)], mask,
                decoder_hidden=[torch.randn(2, 3, 6, generator=g)])
    records = roundtrip(tmp_path, [taps], padding=False)
    assert [r["hidden"][0].shape[0] for r in records] == [3, 2]  # only real tokens stored
    batch = collate_taps(records)
    assert batch.mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    torch.testing.assert_close(batch.hidden[1][0], taps.hidden[1][0, :3])
    torch.testing.assert_close(batch.hidden[1][1, :2], taps.hidden[1][1, :2])
    assert float(batch.hidden[1][1, 2:].abs().sum()) == 0
    torch.testing.assert_close(batch.decoder_hidden[0], taps.decoder_hidden[0])
