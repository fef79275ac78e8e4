"""Ladder Side-Tuning: frozen backbone with no saved activations, gate formula, shapes, learning."""

from __future__ import annotations

import pytest
import torch

from unipt.baselines import FullFineTuning, LadderSideTuning
from unipt.bench.accounting import SavedActivationMeter
from unipt.registry import build_method

from .helpers import HIDDEN, LAYERS, TinyCNN, train_a_few_steps


def _meter_backbone(method):
    """Wrap the backbone's forward in a SavedActivationMeter; returns the meter."""
    meter = SavedActivationMeter(method.backbone)
    inner = method.backbone.forward

    def metered(*args, **kwargs):
        with meter:
            return inner(*args, **kwargs)

    method.backbone.forward = metered
    return meter


def test_variant_is_named_honestly(bert):
    method = build_method("lst", bert())
    assert method.name == "lst"
    assert method.variant == "LST (random-init side network, no pruning init)"


def test_structure_and_shapes(bert, batch):
    method = LadderSideTuning(bert())
    assert method.side_width == HIDDEN // 8
    assert len(method.downs) == LAYERS + 1 and len(method.blocks) == LAYERS
    out = method(**batch)
    assert out.last_hidden_state.shape == (4, 9, HIDDEN) and out.pooled.shape == (4, HIDDEN)
    assert out.last_hidden_state.requires_grad
    assert set(method.saved_state_dict()) == {n for n, _ in method.named_trainable_parameters()}


def test_no_backbone_activation_is_saved_and_backbone_gets_no_grad(bert, batch):
    method = LadderSideTuning(bert())
    meter = _meter_backbone(method)
    with SavedActivationMeter(method) as total:
        loss = method(**batch).pooled.pow(2).sum()
    assert meter.bytes == 0 and meter.count == 0
    assert total.bytes > 0  # the side chain does save tensors
    loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in method.backbone.parameters())
    assert all(p.grad is not None for _, p in method.named_trainable_parameters())


def test_full_fine_tuning_does_save_backbone_activations(bert, batch):
    """Control for the test above: the same wrapping sees activations when the backbone trains."""
    method = FullFineTuning(bert())
    meter = _meter_backbone(method)
    method(**batch)
    assert meter.bytes > 0


def test_gate_formula(bert, batch):
    method = LadderSideTuning(bert()).eval()
    with torch.no_grad():
        method.gate_logits.copy_(torch.tensor([0.05, -0.2]))
    gates = torch.sigmoid(method.gate_logits / 0.1)
    assert torch.allclose(method.gate_values(), gates)
    downs, blocks_in, blocks_out = [], [], []
    for down in method.downs:
        down.register_forward_hook(lambda _m, _i, out: downs.append(out))
    for block in method.blocks:
        block.register_forward_pre_hook(lambda _m, args: blocks_in.append(args[0]))
        block.register_forward_hook(lambda _m, _i, out: blocks_out.append(out))
    method(**batch)
    previous = downs[0]
    for i in range(len(method.blocks)):
        expected = gates[i] * downs[i + 1] + (1 - gates[i]) * previous
        assert torch.allclose(blocks_in[i], expected, atol=1e-6)
        previous = blocks_out[i]


def test_learns(bert, batch):
    losses = train_a_few_steps(LadderSideTuning(bert()), batch)
    assert losses[-1] < losses[0]


def test_backbone_mode(bert):
    assert not LadderSideTuning(bert()).train().backbone.training
    assert LadderSideTuning(bert(), backbone_train_mode=True).train().backbone.training


def test_cnn_with_hooks_pools_stages_to_the_final_grid(images):
    backbone = TinyCNN()
    method = LadderSideTuning(
        backbone, layer_names=["stem", "stage1", "stage2"], example_inputs=images, reduction=4
    )
    assert method.is_map and method.side_width == 8 and len(method.blocks) == 2
    assert backbone.stage1[1].num_batches_tracked.item() == 0  # the width probe ran in eval mode
    out = method(**images)
    assert out.last_hidden_state.shape == (2, 16, 32)
    losses = train_a_few_steps(method, images)
    assert losses[-1] < losses[0]


def test_hf_cnn_hidden_states(images):
    from transformers import ResNetConfig, ResNetModel

    config = ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"
    )
    method = LadderSideTuning(ResNetModel(config), example_inputs=images, reduction=2)
    out = method(**images)
    assert out.last_hidden_state.dim() == 3 and out.last_hidden_state.shape[-1] == 16


def test_needs_example_inputs_without_a_transformer_config():
    with pytest.raises(ValueError, match="example_inputs"):
        LadderSideTuning(TinyCNN(), layer_names=["stem", "stage2"])
