"""The fused kernel computes the reference modules' function, saves memory linear in L, and its memory mode."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from unipt import UniPTConfig
from unipt.bench.accounting import SavedActivationMeter
from unipt.builder import build_side_network
from unipt.nn.fused import LayerFeed, MixOptions, guided_mix
from unipt.outputs import masked_mean

# One small config per input kind and preset (the paper's forms, narrow widths).
CASES = {
    "auto/sequence": dict(preset="auto", input_kind="sequence", in_widths=[12] * 4),
    "vse_text": dict(preset="vse_text", in_widths=[12] * 4, out_width=10),
    "clipvil": dict(preset="clipvil", in_widths=[12] * 4),
    "vse_cnn/spatial": dict(preset="vse_cnn", in_widths=[4, 6, 8], out_width=10),
    "clip4clip/single_query": dict(preset="clip4clip", in_widths=[12] * 4, final_width=8),
    "mdetr/cross_stream": dict(preset="mdetr", in_widths=[8] * 7, decoder_widths=[8] * 7),
    "uniform+no-interaction": dict(preset="auto", input_kind="sequence", in_widths=[12] * 3,
                                   aggregation="uniform", interaction="none"),
    "clamp eps, small blocks": dict(preset="auto", input_kind="sequence", in_widths=[12] * 3,
                                    eps_mode="clamp", query_block=2),
}


def _inputs(config: UniPTConfig, dtype=torch.float32):
    g = torch.Generator().manual_seed(3)
    b, length = 3, 7
    mask = torch.ones(b, length)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    if config.input_kind == "spatial":
        sizes = zip(config.in_widths, [8, 4, 2], strict=True)
        hidden = [torch.randn(b, w, s, s, generator=g, dtype=dtype) for w, s in sizes]
        return dict(hidden=hidden)
    hidden = [torch.randn(b, length, w, generator=g, dtype=dtype) for w in config.in_widths]
    if config.input_kind == "single_query":
        return dict(hidden=hidden, mask=mask, final=torch.randn(b, config.final_width, generator=g, dtype=dtype))
    if config.input_kind == "cross_stream":
        dec = [torch.randn(b, 5, w, generator=g, dtype=dtype) for w in config.decoder_widths]
        return dict(encoder_hidden=hidden, decoder_hidden=dec, encoder_mask=mask)
    return dict(hidden=hidden, mask=mask)


def _step(side: nn.Module, inputs: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    side.zero_grad()
    out = side(**{k: list(v) if isinstance(v, list) else v for k, v in inputs.items()})
    weights = torch.linspace(-1, 1, out.last_hidden_state.numel()).view_as(out.last_hidden_state)
    loss = (out.last_hidden_state * weights.to(out.last_hidden_state.dtype)).sum()
    if out.aux_hidden_states is not None:
        loss = loss + out.aux_hidden_states.square().mean()
    loss.backward()
    return out.last_hidden_state.detach(), {n: p.grad.clone() for n, p in side.named_parameters() if p.grad is not None}


def _pair(overrides: dict, **fused_overrides):
    torch.manual_seed(0)
    ref = build_side_network(UniPTConfig(kernel="reference", **overrides))
    fused = build_side_network(UniPTConfig(**{**overrides, **fused_overrides}))
    fused.load_state_dict(ref.state_dict())
    return ref, fused


@pytest.mark.parametrize("name", list(CASES))
def test_fused_matches_reference_outputs_and_every_gradient(name):
    ref, fused = _pair(CASES[name])
    inputs = _inputs(UniPTConfig(**CASES[name]))
    out_ref, grads_ref = _step(ref, inputs)
    out_fused, grads_fused = _step(fused, inputs)
    assert torch.allclose(out_fused, out_ref, atol=1e-5, rtol=1e-5)
    assert grads_ref.keys() == grads_fused.keys() and grads_ref
    for key, grad in grads_ref.items():
        assert torch.allclose(grads_fused[key], grad, atol=1e-5, rtol=1e-4), key


@pytest.mark.parametrize("name", ["auto/sequence", "vse_text", "clip4clip/single_query"])
def test_memory_mode_matches_within_bf16_rounding(name):
    ref, low = _pair(CASES[name], memory="min")
    inputs = _inputs(UniPTConfig(**CASES[name]))
    out_ref, grads_ref = _step(ref, inputs)
    out_low, grads_low = _step(low, inputs)
    assert torch.equal(out_low, out_ref) or torch.allclose(out_low, out_ref, atol=1e-5)  # forward is exact
    for key, grad in grads_ref.items():  # backward recomputes from bf16 taps: ~3 significant digits
        scale = grad.abs().max().clamp(min=1e-3)
        assert (grads_low[key] - grad).abs().max() / scale < 3e-2, key


def test_memory_mode_needs_the_fused_kernel():
    with pytest.raises(ValueError, match="kernel='fused'"):
        build_side_network(UniPTConfig(kernel="reference", memory="min", in_widths=[8, 8]))


def _kernel_args(dtype, causal=False, skip="identity"):
    g = torch.Generator().manual_seed(0)
    b, length, d = 2, 5, 3
    guide = torch.randn(b, length, d, dtype=dtype, generator=g, requires_grad=True)
    xs = [torch.randn(b, length, d, dtype=dtype, generator=g, requires_grad=True) for _ in range(3)]
    norm = nn.LayerNorm(d).to(dtype)
    gate = nn.Linear(d, 1).to(dtype)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=dtype)
    return guide, xs, norm, gate, mask, MixOptions(skip=skip, causal=causal, block=2)


@pytest.mark.parametrize("skip", ["identity", "class_token", "none"])
def test_gradcheck_in_float64(skip):
    guide, xs, norm, gate, mask, options = _kernel_args(torch.float64, skip=skip)
    d = guide.shape[-1]

    def fn(guide, pooled, weight, bias, x0, x1, x2, ln_w, ln_b):
        def feature(x):
            return nn.functional.layer_norm(x, (d,), ln_w, ln_b)

        feeds = [LayerFeed(x0, feature, (ln_w, ln_b)), LayerFeed(x1), LayerFeed(x2)]
        return guided_mix(guide, pooled, feeds, SimpleNamespace(weight=weight, bias=bias), mask, None, options)

    pooled = masked_mean(guide, mask).detach().requires_grad_(True)
    params = [t.detach().clone().requires_grad_(True) for t in (gate.weight, gate.bias, norm.weight, norm.bias)]
    args = (guide, pooled, params[0], params[1], *xs, params[2], params[3])
    assert torch.autograd.gradcheck(fn, args, atol=1e-6, rtol=1e-5)


def test_causal_outputs_never_read_later_tokens():
    guide, xs, norm, gate, _mask, options = _kernel_args(torch.float64, causal=True)
    pooled = guide.detach().cumsum(1) / torch.arange(1, 6, dtype=torch.float64).view(1, -1, 1)

    def run(guide, xs):
        mixed, alpha = guided_mix(guide, pooled, [LayerFeed(x) for x in xs], gate, None, None, options)
        return mixed, alpha

    mixed, alpha = run(guide, xs)
    assert alpha.shape == (2, 5, 3)
    changed = [x.detach().clone() for x in xs]
    for x in changed:
        x[:, 3:] += 10.0
    guide2 = guide.detach().clone()
    guide2[:, 3:] -= 5.0
    mixed2, alpha2 = run(guide2, changed)
    assert torch.equal(mixed2[:, :3], mixed[:, :3]) and torch.equal(alpha2[:, :3], alpha[:, :3])
    assert not torch.allclose(mixed2[:, 3:], mixed[:, 3:])


def _saved_bytes(side: nn.Module, length: int, batch: int) -> int:
    hidden = [torch.randn(batch, length, w) for w in side.in_widths]
    mask = torch.ones(batch, length)
    with SavedActivationMeter(side) as meter:
        out = side(hidden, mask)
    out.last_hidden_state.sum().backward()
    return meter.bytes


def test_saved_memory_is_linear_in_length_at_fixed_tokens():
    overrides = dict(preset="auto", input_kind="sequence", in_widths=[32] * 4)
    ref, fused = _pair(overrides)
    low = copy.deepcopy(fused)
    low.branch.memory = "min"
    tokens = 2048
    ref_short, ref_long = _saved_bytes(ref, 64, tokens // 64), _saved_bytes(ref, 512, tokens // 512)
    fused_short, fused_long = _saved_bytes(fused, 64, tokens // 64), _saved_bytes(fused, 512, tokens // 512)
    assert ref_long > 2 * ref_short  # the reference keeps [B, L, L] maps per layer
    assert fused_long <= 1.05 * fused_short  # the fused kernel keeps only [B, L, d]-sized tensors
    assert fused_long < ref_long / 3
    assert _saved_bytes(low, 512, tokens // 512) < 0.8 * fused_long


def test_compiled_side_network_matches_eager_and_keeps_its_keys(tiny_bert, tiny_batch):
    from unipt import get_unipt_model

    eager = get_unipt_model(tiny_bert, UniPTConfig())
    compiled = get_unipt_model(tiny_bert, UniPTConfig(compile=True))
    compiled.side.load_state_dict(eager.side.state_dict())
    assert list(compiled.saved_state_dict()) == list(eager.saved_state_dict())
    out_e, out_c = eager(**tiny_batch), compiled(**tiny_batch)
    out_e.pooled.sum().backward()
    out_c.pooled.sum().backward()
    assert torch.allclose(out_c.last_hidden_state, out_e.last_hidden_state, atol=1e-5)
    for (name, p), q in zip(eager.side.named_parameters(), compiled.side.parameters(), strict=True):
        assert torch.allclose(q.grad, p.grad, atol=1e-5), name


def test_compile_without_a_compiler_says_what_to_install(tiny_bert, monkeypatch):
    import shutil

    from unipt import get_unipt_model

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler"):
        get_unipt_model(tiny_bert, UniPTConfig(compile=True))


@pytest.mark.parametrize("bad", [dict(kernel="flash"), dict(memory="low"), dict(query_block=0)])
def test_execution_fields_are_validated(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        UniPTConfig(**bad)
