"""The cache benchmark times a cached, a live UniPT and a LoRA epoch on the same data."""

from __future__ import annotations

import pytest

from unipt.bench.cache import benchmark_cache, format_benchmark


def test_benchmark_reports_build_disk_and_epoch_times(config, tmp_path):
    pytest.importorskip("peft")
    (tmp_path / "bench" / "train").mkdir(parents=True)
    (tmp_path / "bench" / "train" / "stale.txt").write_text("an old cache is replaced, never resumed")
    result = benchmark_cache(config, tmp_path / "bench", records=32, batch_size=16, repeats=2, verbose=False)
    assert result["records"] == 32 and result["batch_size"] == 16
    assert result["build_s"] > 0 and 0 < result["disk_mb"] < 1
    for run in ("cache", "live", "lora"):
        assert result[run]["steps"] == 2 and result[run]["epoch_s"] == min(result[run]["all_epochs_s"]) > 0
        assert len(result[run]["all_epochs_s"]) == 2
    assert result["speedup_vs_live"] == pytest.approx(result["live"]["epoch_s"] / result["cache"]["epoch_s"], rel=0.02)
    assert (tmp_path / "bench" / "train" / "manifest.json").is_file()
    assert not (tmp_path / "bench" / "train" / "stale.txt").exists()
    assert "vs LoRA" in format_benchmark(result)
