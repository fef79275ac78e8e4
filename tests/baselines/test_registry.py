"""Registry: names, options, errors."""

from __future__ import annotations

import pytest

from unipt.baselines import build_method, list_methods, method_variant


def test_all_methods_are_listed():
    assert list_methods() == ["frozen", "full", "bitfit", "lora", "lora_conv", "ia3", "lst", "unipt"]


def test_options_reach_the_constructor(bert):
    assert build_method("lst", bert(), reduction=4).side_width == 16
    assert build_method("lora", bert(), r=2).trainable_parameters()[0] == 2 * 2 * 2 * 128


def test_unknown_method(bert):
    with pytest.raises(KeyError, match="unknown method"):
        build_method("prompt", bert())


def test_every_baseline_has_a_variant(bert):
    for name in ["frozen", "full", "bitfit", "lora", "ia3", "lst"]:
        assert method_variant(build_method(name, bert())) not in ("", "base")
