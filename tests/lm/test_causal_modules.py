"""The causal side network's maths: causal interaction, per-position confidence, running means,
incremental steps equal to a full pass, fused and reference kernels equal."""

import pytest
import torch

from unipt.config import UniPTConfig
from unipt.lm.side import build_causal_side_network
from unipt.nn import ConfidenceAggregation, ParallelInteraction
from unipt.nn.causal import running_mean


def side_network(kernel="fused", **overrides):
    torch.manual_seed(0)
    config = UniPTConfig(task_type="causal_lm", in_widths=[12, 10, 16], side_width=8, kernel=kernel, **overrides)
    net = build_causal_side_network(config, config.in_widths)
    with torch.no_grad():  # a non-zero U, so outputs depend on everything before it
        for p in net.up_proj.parameters():
            p.normal_(0, 0.5)
    return net


def taps(length=7, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, length, w, generator=g) for w in (12, 10, 16)]


def test_causal_interaction_reads_no_later_key_and_rows_sum_to_one():
    torch.manual_seed(0)
    guide, feats = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    weights = ParallelInteraction(eps=1e-8).weights(guide, feats, mask, causal=True)
    assert torch.all(weights.triu(1) == 0)  # key j > query q
    assert torch.all(weights[1, :, :2] == 0)  # padded keys
    sums = weights.sum(-1)
    assert torch.all(((sums - 1).abs() < 1e-5) | (sums == 0))


def test_causal_interaction_on_appended_queries_equals_the_last_rows_of_a_full_pass():
    torch.manual_seed(0)
    guide, feats = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    full = ParallelInteraction()(guide, feats, None, causal=True)
    tail = ParallelInteraction()(guide[:, 4:], feats, None, causal=True)
    assert torch.allclose(full[:, 4:], tail, atol=1e-6)


def test_non_causal_interaction_is_unchanged_by_the_causal_option():
    torch.manual_seed(0)
    guide, feats = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    plain = ParallelInteraction()(guide, feats)
    assert not torch.allclose(plain, ParallelInteraction()(guide, feats, causal=True))
    expected = ParallelInteraction().weights(guide, feats, None) @ feats + feats
    assert torch.equal(plain, expected)


def test_per_position_confidence_is_a_softmax_over_layers_at_every_position():
    torch.manual_seed(0)
    agg = ConfidenceAggregation(8)
    g, t, f = torch.randn(3, 5, 8), torch.randn(4, 3, 5, 8), torch.randn(4, 3, 5, 8)
    mixed, alpha = agg(g, t, f)
    assert alpha.shape == (3, 5, 4)
    logits = (g[None] * t) @ agg.gate.weight[0] + agg.gate.bias  # [n, B, L]
    assert torch.allclose(alpha, logits.softmax(0).permute(1, 2, 0), atol=1e-6)
    assert torch.allclose(mixed, torch.einsum("bln,nbld->bld", alpha, f), atol=1e-6)
    with pytest.raises(ValueError, match="per position"):
        agg(g, t[:, :, 0], f)


def test_running_mean_counts_only_real_positions_and_continues_from_a_cache():
    x = torch.arange(12.0).reshape(1, 6, 2)
    mask = torch.tensor([[0.0, 1, 1, 0, 1, 1]])
    mean, total = running_mean(x, mask)
    assert torch.equal(mean[0, 0], torch.zeros(2))  # nothing real yet: count clamped at 1
    assert torch.allclose(mean[0, 2], (x[0, 1] + x[0, 2]) / 2)
    assert torch.allclose(mean[0, 5], (x[0, 1] + x[0, 2] + x[0, 4] + x[0, 5]) / 4)
    head, head_total = running_mean(x[:, :4], mask[:, :4])
    tail, _ = running_mean(x[:, 4:], mask[:, 4:], head_total, mask[:, :4].sum(1, keepdim=True))
    assert torch.allclose(torch.cat([head, tail], 1), mean)
    assert torch.allclose(total, (x[0] * mask[0, :, None]).sum(0))


@pytest.mark.parametrize("kernel", ["fused", "reference"])
def test_side_output_at_t_ignores_every_later_token(kernel):
    net = side_network(kernel)
    hidden = taps()
    changed = [h.clone() for h in hidden]
    for h in changed:
        h[:, 4:] = torch.randn_like(h[:, 4:])
    out, _, _ = net(hidden)
    again, _, _ = net(changed)
    assert torch.equal(out[:, :4], again[:, :4])
    assert not torch.allclose(out[:, 4:], again[:, 4:])


def test_fused_and_reference_causal_paths_agree_in_outputs_and_gradients():
    hidden = taps(length=9)
    mask = torch.ones(2, 9)
    mask[1, :2] = 0
    results = {}
    for kernel in ("fused", "reference"):
        net = side_network(kernel, query_block=4)  # several query blocks in the fused kernel
        out, alpha, _ = net([h.clone() for h in hidden], mask)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        results[kernel] = (out, alpha, {n: p.grad.clone() for n, p in net.named_parameters()})
    (out_f, alpha_f, grads_f), (out_r, alpha_r, grads_r) = results["fused"], results["reference"]
    assert torch.allclose(out_f, out_r, atol=1e-5)
    assert torch.allclose(alpha_f, alpha_r, atol=1e-6)
    assert grads_f.keys() == grads_r.keys()
    for name in grads_f:
        assert torch.allclose(grads_f[name], grads_r[name], atol=1e-4, rtol=1e-4), name


@pytest.mark.parametrize("kernel", ["fused", "reference"])
def test_token_by_token_with_the_side_cache_equals_one_full_pass(kernel):
    net = side_network(kernel)
    hidden = taps(length=8)
    mask = torch.ones(2, 8)
    mask[0, :3] = 0
    full, alpha_full, _ = net(hidden, mask)
    with torch.no_grad():
        out, alpha, cache = net([h[:, :5] for h in hidden], mask[:, :5], use_cache=True)
        steps, weights = [out], [alpha]
        for t in range(5, 8):
            out, alpha, cache = net([h[:, t:t + 1] for h in hidden], mask[:, t:t + 1], cache, use_cache=True)
            steps.append(out)
            weights.append(alpha)
    assert cache.length == 8 and len(cache.keys) == 2
    n, b, t, d = 2, 2, 8, 8  # keys n*B*t*d, key mask B*t, sums B*d + n*B*d, count B (float32)
    assert cache.nbytes() == 4 * (n * b * t * d + b * t + b * d + n * b * d + b)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    assert torch.allclose(torch.cat(weights, 1), alpha_full, atol=1e-6)


def test_up_projection_starts_at_zero():
    torch.manual_seed(0)
    config = UniPTConfig(task_type="causal_lm", in_widths=[12, 10, 16], side_width=8)
    net = build_causal_side_network(config, config.in_widths)
    out, _, _ = net(taps())
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize(("field", "value", "match"), [
    ("output_mode", "replace", "discard the language model"),
    ("norm", "batch", "later tokens"),
    ("skip", "class_token", "class-token"),
    ("input_kind", "spatial", "token sequences"),
])
def test_causal_lm_config_refuses_non_causal_settings(field, value, match):
    with pytest.raises(ValueError, match=match):
        UniPTConfig(task_type="causal_lm", **{field: value})


def test_causal_lm_config_defaults_to_a_residual_output():
    config = UniPTConfig(task_type="causal_lm")
    assert config.output_mode == "residual" and config.input_kind == "sequence"
    assert UniPTConfig().output_mode == "replace"  # other tasks keep the preset


def test_minimum_memory_mode_keeps_outputs_and_gradients_within_bf16_rounding():
    hidden = taps(length=9)
    results = {}
    for memory in ("default", "min"):
        net = side_network("fused", memory=memory)
        out, _, _ = net([h.clone() for h in hidden])
        out.pow(2).sum().backward()
        results[memory] = (out, {n: p.grad.clone() for n, p in net.named_parameters()})
    assert torch.allclose(results["min"][0], results["default"][0], atol=1e-5)
    for name, grad in results["default"][1].items():  # recomputed from bf16 taps: ~3 significant digits
        scale = grad.abs().max().clamp(min=1e-3)
        assert (results["min"][1][name] - grad).abs().max() / scale < 3e-2, name


@pytest.mark.parametrize(("field", "value"), [("task_type", "seq2seq"), ("backbone_quantization", "int4"),
                                              ("backbone_dtype", "float8"), ("side_dtype", "float16")])
def test_unknown_task_or_precision_values_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        UniPTConfig(**{field: value})
