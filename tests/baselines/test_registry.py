"""Registry: names, options, errors."""

from __future__ import annotations

import pytest

from unipt.registry import build_method, list_methods


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
        assert build_method(name, bert()).variant not in ("", "base")


def test_a_mistyped_option_names_the_closest_one(bert):
    with pytest.raises(ValueError, match=r"method 'lora' has no option 'alhpa'; did you mean \['alpha'\]"):
        build_method("lora", bert(), alhpa=4)
    with pytest.raises(ValueError, match=r"method 'unipt' has no option 'reductoin'; did you mean \['reduction'\]"):
        build_method("unipt", bert(), reductoin=4)
    with pytest.raises(KeyError, match="did you mean 'lora'"):
        build_method("lroa", bert())


def test_every_method_implements_the_one_interface(bert):
    from unipt.method import AdaptedMethod, FrozenTapMethod

    for name in list_methods():
        if name == "lora_conv":  # BERT has no convolutions
            continue
        method = build_method(name, bert())
        assert isinstance(method, AdaptedMethod), name
        assert isinstance(method, FrozenTapMethod) == (name in ("frozen", "unipt")), name
