"""Peak memory: readings are well-formed, isolation works through a spawned process, errors surface."""

from __future__ import annotations

import pytest

from unipt.bench.memory import PeakMemory, measure_in_this_process, measure_peak_memory
from unipt.bench.workload import tiny_bert_workload

from .helpers import token_mlp_workload

WORKLOAD = tiny_bert_workload(hidden=32, layers=1, heads=2, seq_len=8, batch_size=4)


def _well_formed(reading: PeakMemory, method: str) -> None:
    assert reading.method == method
    assert reading.backend in {"cpu-vmhwm", "cpu-sampled"}
    assert reading.baseline_bytes > 0 and reading.peak_bytes >= reading.baseline_bytes
    assert reading.peak_delta_bytes == reading.peak_bytes - reading.baseline_bytes
    assert reading.to_dict()["peak_delta_bytes"] == reading.peak_delta_bytes


def test_in_process_reading_is_well_formed():
    _well_formed(measure_in_this_process(WORKLOAD, "lst", steps=2), "lst")


@pytest.mark.slow
def test_each_method_runs_in_a_fresh_spawned_process():
    reading = measure_peak_memory(token_mlp_workload(), "full", steps=2, threads=1, timeout_s=300)
    _well_formed(reading, "full")


def test_failures_in_the_fresh_process_surface_instead_of_hanging():
    with pytest.raises(RuntimeError, match="unknown method"):
        measure_peak_memory(token_mlp_workload(), "no-such-method", steps=1, threads=1, timeout_s=300)
