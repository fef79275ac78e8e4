"""The demo's configs, table and plot (the full demo is the README's first command)."""

from pathlib import Path

from unipt.demo import demo_config, format_demo_table, plot_demo
from unipt.train.config import RunConfig


def summary(rsum: float, params: int) -> dict:
    metrics = {"i2t_r1": 10.0, "i2t_r5": 20.0, "i2t_r10": 30.0, "t2i_r1": 5.0, "t2i_r5": 15.0, "t2i_r10": 25.0,
               "rsum": rsum}
    history = [{"epoch": 1, "losses": [3.0, 2.0], "eval": {"rsum": rsum - 5}},
               {"epoch": 2, "losses": [1.5, 1.0], "eval": {"rsum": rsum}}]
    return {"test_metrics": metrics, "trainable_parameters": params, "peak_memory_mb": 900.0,
            "step_time_ms": 120.0, "history": history}


def test_both_arms_share_data_head_budget_and_cache(tmp_path):
    frozen, unipt = (RunConfig.from_dict(demo_config(m, tmp_path)) for m in ("frozen", "unipt"))
    assert frozen.data == unipt.data and frozen.task == unipt.task and frozen.optim == unipt.optim
    assert frozen.train.cache_dir == unipt.train.cache_dir
    assert {t.method for t in frozen.towers.values()} == {"frozen"}
    assert {t.method for t in unipt.towers.values()} == {"unipt"}


def test_table_reports_the_rsum_difference_and_plot_is_written(tmp_path: Path):
    arms = {"unipt": summary(150.0, 1_000), "frozen": summary(120.0, 500)}
    costs = {"unipt": {"step_ms": 300.0, "saved_activation_mb": 5.0},
             "frozen": {"step_ms": 280.0, "saved_activation_mb": 1.0},
             "inference": {"step_ms": 250.0, "saved_activation_mb": 0.0}}
    table = format_demo_table(arms, costs)
    assert "| unipt | 10.0 |" in table and "1,000" in table
    assert "UniPT - frozen rSum on the test split: +30.0" in table
    plot_demo(arms, tmp_path / "demo.png")
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
