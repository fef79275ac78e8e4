"""Presets reproduce the paper's four code variants with the reference parameter counts."""

import pytest
import torch

from unipt import UniPTConfig, list_presets
from unipt.builder import build_side_network, side_dims
from unipt.taps import standalone


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("preset", "overrides", "expected"),
    [
        ("vse_text", {}, 5_921_281),
        ("vse_cnn", {}, 6_433_537),
        ("clip4clip", {}, 5_644_289),
        ("clip4clip", {"in_widths": [512] * 13}, 3_940_353),
        ("clipvil", {}, 4_736_641),
        ("mdetr", {}, 481_666),
    ],
)
def test_paper_parameter_counts(preset, overrides, expected):
    assert n_params(build_side_network(UniPTConfig.for_paper(preset, **overrides))) == expected


def side_width(config: UniPTConfig) -> int:
    return side_dims(config, standalone(config)).side_width


def test_side_widths_follow_each_variant_rule():
    assert side_width(UniPTConfig.for_paper("vse_text")) == 512  # 1024 / 2 (output width)
    assert side_width(UniPTConfig.for_paper("clipvil")) == 384  # 768 / 2 (backbone width)
    assert side_width(UniPTConfig.for_paper("clipvil", reduction=4)) == 192
    assert side_width(UniPTConfig.for_paper("mdetr")) == 128
    assert side_width(UniPTConfig.for_paper("clip4clip")) == 512


def test_preset_fields_are_overridable_and_unknown_preset_is_named():
    cfg = UniPTConfig(preset="clipvil", fusion="linear_norm")
    assert cfg.fusion == "linear_norm" and cfg.up_proj == "linear"
    with pytest.raises(ValueError, match="did you mean"):
        UniPTConfig(preset="clipvl")
    assert {"auto", "vse_text", "vse_cnn", "clip4clip", "clipvil", "mdetr"} <= set(list_presets())


def test_config_roundtrips_through_dict_and_rejects_unknown_fields():
    cfg = UniPTConfig.for_paper("mdetr")
    assert UniPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="Unknown UniPTConfig field 'reducton' \\(did you mean 'reduction'\\?\\)"):
        UniPTConfig.from_dict({**cfg.to_dict(), "reducton": 3})


def test_missing_widths_explain_how_to_get_them():
    with pytest.raises(ValueError, match="get_unipt_model"):
        build_side_network(UniPTConfig(preset="vse_text"))


def test_out_of_range_target_layers_are_refused():
    with pytest.raises(ValueError, match="out of range"):
        build_side_network(UniPTConfig.for_paper("clipvil", target_layers=[1, 40]))


@pytest.mark.parametrize(
    ("preset", "shape_in", "shape_out"),
    [("vse_text", [(2, 5, 768)] * 13, (2, 5, 1024)), ("clipvil", [(2, 5, 768)] * 13, (2, 5, 768))],
)
def test_sequence_shapes(preset, shape_in, shape_out):
    side = build_side_network(UniPTConfig.for_paper(preset))
    out = side([torch.randn(s) for s in shape_in], torch.ones(2, 5))
    assert out.last_hidden_state.shape == shape_out
    assert torch.allclose(out.layer_weights.sum(-1), torch.ones(2))


def test_vse_cnn_shape_at_512px():
    side = build_side_network(UniPTConfig.for_paper("vse_cnn"))
    maps = [torch.randn(1, c, s, s) for c, s in zip([256, 512, 1024, 2048], [128, 64, 32, 16], strict=True)]
    assert side(maps).last_hidden_state.shape == (1, 256, 1024)


def test_clip4clip_shape_and_residual_to_frozen_embedding():
    side = build_side_network(UniPTConfig.for_paper("clip4clip"))
    final = torch.randn(2, 512)
    out = side([torch.randn(2, 50, 768) for _ in range(13)], None, final)
    assert out.pooled.shape == (2, 512)
    with torch.no_grad():
        side.up.linear.weight.zero_()
        side.up.linear.bias.zero_()
    out = side([torch.randn(2, 50, 768) for _ in range(13)], None, final)
    assert torch.allclose(out.pooled, final)  # U(M) == 0 leaves exactly the frozen embedding


def test_mdetr_decoder_stack_shape():
    side = build_side_network(UniPTConfig.for_paper("mdetr"))
    enc = [torch.randn(2, 30, 256) for _ in range(7)]
    dec = [torch.randn(2, 100, 256) for _ in range(7)]
    mask = torch.ones(2, 30)
    mask[1, 20:] = 0
    out = side(enc, dec, mask)
    assert out.last_hidden_state.shape == (2, 100, 256)
    assert torch.cat([out.aux_hidden_states, out.last_hidden_state[None]]).shape == (4, 2, 100, 256)


def test_zero_init_residual_starts_at_the_frozen_output():
    side = build_side_network(UniPTConfig(in_widths=[16] * 4, output_mode="residual", zero_init_up=True))
    hidden = [torch.randn(2, 5, 16) for _ in range(4)]
    last = hidden[-1]
    out = side(hidden, torch.ones(2, 5))
    assert torch.allclose(out.last_hidden_state, last)
    out.pooled.sum().backward()
    assert side.up.linear.weight.grad.abs().sum() > 0  # U still learns from step one
