"""`unipt bench causal` pieces, in this process on a tiny decoder (the command runs each arm in its own)."""

import math

from unipt.bench.causal_lm import format_causal, full_finetune_estimate, measure_arm


def test_each_arm_is_measured_with_its_own_costs():
    rows = {arm: measure_arm("random:tiny-llama", arm, [8, 16], 2, 1, 0, "cpu", True)
            for arm in ("forward", "unipt", "unipt-int8")}  # LoRA and full share this code path
    assert [r["length"] for r in rows["unipt"]] == [8, 16]
    assert all(r["saved_activation_mb"] == 0 and r["trainable_parameters"] == 0 for r in rows["forward"])
    for arm in ("unipt", "unipt-int8"):
        assert all(r["saved_activation_mb"] > 0 and r["step_ms"] > 0 for r in rows[arm]), arm
        assert rows[arm][1]["saved_activation_mb"] > rows[arm][0]["saved_activation_mb"]  # longer: more saved
    assert rows["unipt-int8"][0]["frozen_weight_mb"] < rows["unipt"][0]["frozen_weight_mb"]
    assert rows["unipt"][0]["trainable_parameters"] == rows["unipt-int8"][0]["trainable_parameters"]
    table = format_causal([r for arm in rows.values() for r in arm])
    assert table.count("| random:tiny-llama |") == 6


def test_full_finetuning_of_the_1b_shape_is_an_estimate_of_16_bytes_per_parameter():
    row = full_finetune_estimate("random:llama-1b", 256, 1)
    assert 1.2e9 < row["trainable_parameters"] < 1.3e9
    assert math.isclose(row["peak_over_loaded_mb"], 16 * row["trainable_parameters"] / 2**20)
    assert row["step_ms"] is None and "not run" in row["note"]
