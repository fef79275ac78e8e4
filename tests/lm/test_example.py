"""The packaged LLM example's pieces: its run configs, the instruction data, the report table."""

import math

import pytest

from unipt.lm.example import ARMS, ExampleOptions, format_report, run_config
from unipt.train.config import RunConfig


@pytest.mark.parametrize("method", ARMS)
def test_every_arm_is_a_valid_causal_lm_run_config(method, tmp_path):
    options = ExampleOptions.quick().with_overrides(out=str(tmp_path))
    config = RunConfig.from_dict(run_config(options, method))
    assert config.task.name == "causal_lm" and config.towers["lm"].method == method
    assert config.data.limit_train == 16 and config.train.max_steps_per_epoch == 2
    assert config.train.output_dir == str(tmp_path / method)


def test_unknown_arm_is_refused():
    with pytest.raises(ValueError, match="unknown arms"):
        ExampleOptions().with_overrides(methods="unipt,qlora")


def test_rotten_tomatoes_instructions_are_balanced_one_word_answers():
    from unipt.data.packaged import locate_rotten_tomatoes
    from unipt.lm.data import RT_INSTRUCTION, rotten_tomatoes_instructions

    try:
        locate_rotten_tomatoes()
    except FileNotFoundError as err:  # installed by scripts/setup.sh
        pytest.skip(f"packaged Rotten Tomatoes not installed: {err}")

    records = rotten_tomatoes_instructions("test", limit=40)
    assert len(records) == 40
    assert {r.response for r in records} == {"fresh", "rotten"}
    assert 15 <= sum(r.response == "fresh" for r in records) <= 25  # a stratified, roughly balanced subset
    assert all(r.prompt.startswith(RT_INSTRUCTION) and "Review: " in r.prompt for r in records)
    train = {r.prompt for r in rotten_tomatoes_instructions("train", limit=200)}
    assert not train & {r.prompt for r in records}


def test_report_table_lists_every_arm():
    rows = [{"method": m, "accuracy": 50.0 + i, "perplexity": 2.0, "trainable_parameters": 10 * i,
             "step_ms": math.nan if m == "frozen" else 100.0, "peak_mb": 900.0, "peak_over_loaded_mb": 50.0,
             "wall_s": 60.0} for i, m in enumerate(ARMS)]
    table = format_report({"options": vars(ExampleOptions()), "rows": rows})
    assert "1280 training / 400 held-out" in table
    assert table.count("\n| ") == 4  # header + 3 arms
    assert "| frozen (zero-shot) | 50.0 | 2.000 | 0 | — |" in table
