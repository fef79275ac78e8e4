"""Truncated / empty safetensors are named with where a good copy comes from (``from_pretrained``,
``unipt eval``, the activation cache), and every cache shard a run reads is verified before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

import unipt
from unipt.errors import DamagedFileError
from unipt.train import Trainer, load_run_config
from unipt.train.caching import build_cache

from . import helpers
from .helpers import assert_one_line_error, write_config


def damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:  # same size, other bytes inside the tensor data
        flipped = bytearray(raw)
        flipped[-5] ^= 0xFF
        path.write_bytes(bytes(flipped))


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_from_pretrained_names_a_damaged_weights_file(tmp_path: Path, how: str) -> None:
    torch.manual_seed(0)
    backbone = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, vocab_size=64), add_pooling_layer=False)
    unipt.get_unipt_model(backbone).save_pretrained(tmp_path / "side")
    damage(tmp_path / "side" / "unipt_side.safetensors", how)
    with pytest.raises(DamagedFileError) as caught:
        unipt.UniPTModel.from_pretrained(backbone, tmp_path / "side")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'side' / 'unipt_side.safetensors'} is damaged (")
    assert ("empty" if how == "empty" else "truncated or overwritten") in message
    assert "save it again with save_pretrained" in message


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_unipt_eval_names_a_damaged_checkpoint(tmp_path: Path, how: str) -> None:
    config = write_config(tmp_path)
    assert helpers.run_cli(["train", str(config)]).code == 0
    weights = tmp_path / "run" / "checkpoints" / "best" / "text" / "unipt_side.safetensors"
    damage(weights, how)
    result = helpers.run_cli(["eval", str(tmp_path / "run"), "--split", "eval"])
    assert_one_line_error(result, "eval", f"{weights} is damaged", "use checkpoints/last of the same run")
    assert (tmp_path / "run" / "checkpoints" / "last" / "text" / "unipt_side.safetensors").stat().st_size > 0


@pytest.mark.parametrize(("role", "how"), [("eval", "flipped"), ("eval", "truncated"), ("train", "empty")])
def test_every_cache_shard_is_verified_before_training(tmp_path: Path, role: str, how: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config_path = write_config(tmp_path)
    config = load_run_config(config_path)
    for split in ("train", "eval"):
        build_cache(config, tmp_path / "cache", split, records_per_shard=4, progress=False)
    shard = sorted((tmp_path / "cache" / role).glob("shard-*.safetensors"))[-1]
    damage(shard, how)
    started = []
    real_fit = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self: (started.append(True), real_fit(self))[1])
    result = helpers.run_cli(["train", str(config_path), "--cache", str(tmp_path / "cache")])
    line = assert_one_line_error(result, "train", f"shard {shard}", "rebuild")
    assert ("corrupted: sha256" in line) if how == "flipped" else ("bytes, the manifest says" in line)
    assert not started  # found before training began, not when the first evaluation reads the shard


def test_a_sound_cache_still_trains(tmp_path: Path) -> None:
    config = load_run_config(write_config(tmp_path), [f"train.cache_dir={tmp_path / 'cache'}"])
    for split in ("train", "eval"):
        build_cache(config, tmp_path / "cache", split, records_per_shard=4, progress=False)
    result = Trainer(config).fit()
    assert result.best_metrics and (tmp_path / "run" / "checkpoints" / "last").is_dir()
