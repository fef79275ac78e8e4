"""Run configs: YAML + overrides, typed sections, clear errors."""

import pytest

from unipt.train.config import RunConfig, apply_override, load_run_config


def test_overrides_set_nested_values_parsed_as_yaml():
    data = {}
    apply_override(data, "towers.text.backbone=minilm")
    apply_override(data, "train.epochs=3")
    apply_override(data, "optim.betas=[0.9, 0.98]")
    config = RunConfig.from_dict(data)
    assert config.towers["text"].backbone == "minilm" and config.train.epochs == 3
    assert config.optim.betas == (0.9, 0.98)


def test_scientific_notation_without_a_dot_is_a_float():
    config = load_run_config(None, ["towers.text=minilm", "optim.lr=1e-3", "optim.weight_decay=5e-2"])
    assert config.optim.lr == pytest.approx(1e-3) and isinstance(config.optim.weight_decay, float)


def test_unknown_keys_suggest_the_right_one():
    with pytest.raises(ValueError, match=r"did you mean \['train.epochs'\]"):
        load_run_config(None, ["towers.text=minilm", "train.epoch=3"])
    with pytest.raises(ValueError, match="towers"):
        RunConfig.from_dict({"task": {"name": "classification"}})
    with pytest.raises(ValueError, match="must be a number"):
        load_run_config(None, ["towers.text=minilm", "optim.lr=fast"])


def test_bad_override_and_missing_file_are_explained(tmp_path):
    with pytest.raises(ValueError, match="key.sub=value"):
        apply_override({}, "train.epochs")
    with pytest.raises(FileNotFoundError, match="configs/"):
        load_run_config(tmp_path / "nope.yaml")


def test_example_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.rglob("*.yaml"))
    assert len(files) >= 9
    for file in files:
        config = load_run_config(file)
        assert config.towers and config.task.name
