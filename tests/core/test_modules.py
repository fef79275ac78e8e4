"""The method's maths: interaction invariants, shared gate, softmax over layers, guided pooling."""

import torch

from unipt.nn import ConfidenceAggregation, GuidedWindowPooling, ParallelInteraction


def test_attention_rows_sum_to_one_and_padded_keys_get_zero():
    torch.manual_seed(0)
    guide, feats = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    weights = ParallelInteraction(eps=1e-8).weights(guide, feats, mask)
    assert (weights >= 0).all()
    assert torch.all(weights[1, :, 3:] == 0)
    sums = weights.sum(-1)
    assert torch.all(((sums - 1).abs() < 1e-5) | (sums == 0))


def test_identity_skip_added_after_normalisation():
    guide = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    feats = torch.tensor([[[2.0, 0.0], [0.0, 3.0]]])
    out = ParallelInteraction(eps=0.0)(guide, feats)
    # scores = G F^T = [[2, 0], [0, 3]] -> rows L1-normalised = I -> A F + F = 2F
    assert torch.allclose(out, 2 * feats)


def test_all_negative_scores_leave_only_the_skip():
    guide, feats = -torch.ones(1, 3, 4), torch.ones(1, 3, 4)
    assert torch.allclose(ParallelInteraction()(guide, feats), feats)


def test_class_token_skip_for_single_query():
    guide, feats = torch.randn(2, 1, 4), torch.randn(2, 5, 4)
    cls = feats[:, 0]
    out = ParallelInteraction(skip="class_token")(guide, feats, None, cls)
    expected = ParallelInteraction(skip="none")(guide, feats) + cls[:, None]
    assert torch.allclose(out, expected)


def test_gate_is_shared_and_weights_are_softmax_over_layers():
    torch.manual_seed(0)
    agg = ConfidenceAggregation(8)
    assert sum(p.numel() for p in agg.parameters()) == 9  # one Linear(8 -> 1) for every layer
    g, t, f = torch.randn(3, 8), torch.randn(5, 3, 8), torch.randn(5, 3, 4, 8)
    mixed, alpha = agg(g, t, f)
    assert alpha.shape == (3, 5)
    assert torch.allclose(alpha.sum(-1), torch.ones(3))
    logits = (g[None] * t) @ agg.gate.weight[0] + agg.gate.bias
    assert torch.allclose(alpha, logits.softmax(0).T, atol=1e-6)
    assert torch.allclose(mixed, torch.einsum("bn,nbld->bld", alpha, f), atol=1e-6)


def test_guided_pooling_matches_a_loop_over_windows():
    torch.manual_seed(0)
    pool = GuidedWindowPooling(channels=3, guide_channels=5, eps=1e-8)
    stage, guide = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 2, 2)
    out = pool(stage, guide)
    proj = pool.guide_to_stage(guide).relu()
    expected = torch.zeros(2, 3, 2, 2)
    for b in range(2):
        for i in range(2):
            for j in range(2):
                win = stage[b, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4]  # [C, 4, 4]
                sal = (win * proj[b, :, i, j, None, None]).sum(0).relu()
                w = sal / (sal.sum() + 1e-8) + 1 / 16
                expected[b, :, i, j] = (win * w).sum((1, 2))
    assert torch.allclose(out, expected, atol=1e-5)


def test_guided_pooling_handles_sizes_that_are_not_multiples():
    pool = GuidedWindowPooling(channels=3, guide_channels=5)
    assert pool(torch.randn(1, 3, 15, 13), torch.randn(1, 5, 4, 4)).shape == (1, 3, 4, 4)


def test_plain_pooling_ablation_is_the_window_mean():
    pool = GuidedWindowPooling(channels=3, guide_channels=5, guided=False)
    stage = torch.randn(1, 3, 4, 4)
    assert torch.allclose(pool(stage, torch.randn(1, 5, 2, 2)), torch.nn.functional.avg_pool2d(stage, 2))
    assert sum(p.numel() for p in pool.parameters()) == 0


def test_side_network_builds_from_plain_arguments_with_named_sub_layers():
    from unipt.builder import build_side_network
    from unipt.config import UniPTConfig
    from unipt.nn import UniPTSideNetwork

    torch.manual_seed(0)
    side = UniPTSideNetwork([12, 12, 12], 6, 12, fusion_form="mlp_norm", up_proj="relu_linear_norm", eps=1e-8)
    torch.manual_seed(0)
    built = build_side_network(UniPTConfig(in_widths=[12] * 3, reduction=2, fusion="mlp_norm",
                                           up_proj="relu_linear_norm", eps=1e-8))
    assert list(side.state_dict()) == list(built.state_dict())  # the builder only maps a config onto arguments
    assert all(torch.equal(a, b) for a, b in zip(side.state_dict().values(), built.state_dict().values(), strict=True))
    assert {"branch.guide.linear.weight", "branch.layers.1.norm.weight", "branch.aggregation.gate.weight",
            "branch.fusion.fc1.weight", "branch.fusion.fc2.weight", "branch.fusion.norm.bias", "up.linear.weight",
            "up.norm.weight"} <= set(side.state_dict())
    hidden = [torch.randn(2, 5, 12) for _ in range(3)]
    assert side(hidden, torch.ones(2, 5)).last_hidden_state.shape == (2, 5, 12)
