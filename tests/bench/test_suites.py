"""Suite specs: every method of a suite gets the same data, head, epochs, batch and seed; configs parse."""

from __future__ import annotations

import pytest

from unipt.bench.suites import HEAD_LR, METHOD_LR, SUITES, get_suite
from unipt.train.config import RunConfig


@pytest.mark.parametrize("name", sorted(SUITES))
def test_methods_differ_only_in_method_options_and_lr(name):
    spec = get_suite(name)
    configs = {m: spec.run_config(m, seed=3, output_dir="runs/x") for m in spec.methods}
    for method, data in configs.items():
        config = RunConfig.from_dict(data)  # valid run config
        assert config.train.seed == 3 and config.train.resume is False
        assert config.train.eval_every == config.train.epochs  # one validation, no early stopping
        assert config.optim.lr == METHOD_LR[method] and config.optim.head_lr == HEAD_LR
        assert {t.method for t in config.towers.values()} == {method}
    def shared(data):
        return {k: v for k, v in data.items() if k not in ("towers", "optim")}
    first = shared(configs[spec.methods[0]])
    assert all(shared(d) == first for d in configs.values())
    optims = [{k: v for k, v in d["optim"].items() if k != "lr"} for d in configs.values()]
    assert all(o == optims[0] for o in optims)
    assert "unipt" in spec.methods and "lora" in spec.methods and "frozen" in spec.methods and "lst" in spec.methods


def test_sizes_and_method_options_are_applied():
    spec = get_suite("fashion_mnist")
    quick = RunConfig.from_dict(spec.run_config("ia3", size="quick"))
    assert quick.data.limit_train == spec.sizes["quick"].limit_train and quick.train.epochs == 1
    assert quick.towers["image"].options["target_modules"] == ["_expand_conv", "_project_conv", "_conv_head"]
    full = RunConfig.from_dict(spec.run_config("unipt"))
    assert full.towers["image"].options["reduction"] == 4 and full.towers["image"].image_size == 64
    # options are copied: editing one config never leaks into the spec
    data = spec.run_config("ia3")
    data["towers"]["image"]["options"]["target_modules"].append("x")
    assert "x" not in spec.run_config("ia3")["towers"]["image"]["options"]["target_modules"]


def test_unknown_names_are_errors():
    with pytest.raises(KeyError, match="unknown suite"):
        get_suite("imagenet")
    with pytest.raises(KeyError, match="has no method"):
        get_suite("tuxpaint").run_config("ia3")


def test_minilm_suites_read_128_tokens_and_suites_default_to_three_seeds():
    from unipt.bench.suite_run import SuiteOptions

    for name in ("rotten_tomatoes", "tuxpaint"):
        config = RunConfig.from_dict(get_suite(name).run_config("unipt"))
        assert config.towers["text"].backbone == "minilm" and config.towers["text"].max_length == 128
    assert SuiteOptions().seeds == 3


def test_suite_command_runs_three_seeds_and_quick_one(monkeypatch, tmp_path):
    from unipt.bench import suite_report
    from unipt.bench.cli import build_parser

    seen = []

    def record(spec, opts):
        seen.append(opts.seeds)
        raise RuntimeError("stop after reading the options")

    monkeypatch.setattr(suite_report, "run_suite", record)
    for command in (["bench", "suite"], ["bench", "quick"], ["bench", "quick", "--seeds", "2"]):
        args = build_parser().parse_args([*command, "--suites", "rotten_tomatoes", "--out", str(tmp_path)])
        with pytest.raises(RuntimeError, match="stop"):
            args.func(args)
    assert seen == [3, 1, 2]
