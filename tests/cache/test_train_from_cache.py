"""Training from the cache = live training (same data, seed), and the backbone never runs."""

from __future__ import annotations

import pytest
import torch

from unipt.cache import CacheError
from unipt.train import Trainer
from unipt.train.caching import build_cache

from . import tiny


def forbid_backbone(trainer: Trainer) -> list[str]:
    calls: list[str] = []

    def refuse(*args, **kwargs):
        calls.append("backbone")
        raise AssertionError("the frozen backbone ran although its taps are cached")

    trainer.system.towers["text"].backbone.forward = refuse
    return calls


@pytest.mark.parametrize("padding", [True, False])
def test_cached_training_matches_live_training(data_root, tmp_path, padding):
    live = Trainer(tiny.config(data_root, tmp_path / "live"))
    live_result = live.fit()

    cache = tmp_path / "cache"
    config = tiny.config(data_root, tmp_path / "cached", **{"train.cache_dir": str(cache)})
    for split in ("train", "eval", "test"):
        build_cache(config, cache, split, padding=padding, batch_size=7, progress=False)  # other batches than training
    cached = Trainer(config)
    calls = forbid_backbone(cached)
    initial = {k: v.clone() for k, v in cached.system.trainable_state_dict().items()}
    cached_result = cached.fit()

    assert calls == []
    expected, actual = live.system.trainable_state_dict(), cached.system.trainable_state_dict()
    assert set(expected) == set(actual) and sum(k.startswith("towers.text.sides.default.") for k in actual) > 10
    assert max(float((actual[k] - initial[k]).abs().max()) for k in actual) > 1e-2  # training moved them
    for key in expected:
        if key.endswith("aggregation.gate.bias"):
            # One bias shared by every layer's confidence: the softmax over layers cancels it, so its true
            # gradient is 0 and AdamW turns float noise (~1e-9) into lr-sized steps. It never changes outputs.
            continue
        torch.testing.assert_close(actual[key], expected[key], atol=1e-5, rtol=0, msg=key)
    for a, b in zip(live_result.history, cached_result.history, strict=True):
        assert a["losses"] == pytest.approx(b["losses"], abs=1e-5)
    assert cached_result.best_metrics == pytest.approx(live_result.best_metrics)
    assert cached_result.test_metrics == pytest.approx(live_result.test_metrics)


def test_missing_eval_cache_falls_back_to_live_but_train_cache_is_required(data_root, tmp_path, capsys):
    cache = tmp_path / "cache"
    config = tiny.config(data_root, tmp_path / "run", **{"train.cache_dir": str(cache), "train.epochs": 1})
    with pytest.raises(CacheError, match="training split"):
        Trainer(config)
    build_cache(config, cache, "train", progress=False)
    trainer = Trainer(config)
    assert "['eval', 'test']" in capsys.readouterr().out
    result = trainer.fit()
    assert result.best_metrics["accuracy"] >= 0 and result.test_metrics is not None
