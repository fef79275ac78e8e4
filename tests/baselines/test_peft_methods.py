"""LoRA (attention and conv targets) and IA3 through PEFT: trainable sets match the hand formulas."""

from __future__ import annotations

import pytest

from unipt.baselines import IA3, LoRA
from unipt.registry import build_method

from .helpers import HIDDEN, INTERMEDIATE, LAYERS, TinyCNN, train_a_few_steps


def test_lora_targets_query_value_with_r_times_in_plus_out(bert, batch):
    r = 4
    method = LoRA(bert(), r=r, alpha=8)
    assert method.targets == ["query", "value"]
    names = [n for n, _ in method.named_trainable_parameters()]
    assert names and all("lora_" in n for n in names)
    # two targets per layer, each HIDDEN -> HIDDEN: r * (in + out) scalars each
    expected = LAYERS * 2 * r * (HIDDEN + HIDDEN)
    assert method.trainable_parameters()[0] == expected == 2048
    saved = method.saved_state_dict()
    assert all("lora_" in k for k in saved) and sum(t.numel() for t in saved.values()) == expected
    assert "query" in method.variant and "r=4" in method.variant
    assert len(method.adapted()) == LAYERS * 2


def test_lora_learns_and_only_adapters_get_gradients(bert, batch):
    method = LoRA(bert(), r=4)
    losses = train_a_few_steps(method, batch)
    assert losses[-1] < losses[0]
    assert all("lora_" in n for n, p in method.named_parameters() if p.grad is not None)


def test_lora_on_a_cnn_uses_conv2d_targets(images):
    r = 2
    method = build_method("lora", TinyCNN(), r=r)
    assert "Conv2d" in method.variant
    # A: k x k conv in -> r; B: 1 x 1 conv r -> out, for the three convolutions (k = 3)
    expected = sum(r * cin * 9 + cout * r for cin, cout in [(3, 8), (8, 16), (16, 32)])
    assert method.trainable_parameters()[0] == expected
    assert method(**images).last_hidden_state.shape == (2, 16, 32)
    losses = train_a_few_steps(method, images)
    assert losses[-1] < losses[0]


def test_lora_conv_forces_convolutions():
    method = build_method("lora_conv", TinyCNN(), r=2)
    assert method.name == "lora_conv" and method.adapted() == ["stage1.0", "stage2.0", "stem"]


def test_lora_without_targets_is_an_error():
    import torch.nn as nn

    with pytest.raises(ValueError, match="no LoRA targets"):
        LoRA(nn.Sequential(nn.ReLU()))


def test_ia3_vectors_match_peft_defaults_for_bert(bert, batch):
    method = IA3(bert())
    names = [n for n, _ in method.named_trainable_parameters()]
    assert names and all("ia3_l" in n for n in names)
    # key, value: out_features each; the two "output.dense" feed-forward targets: in_features each
    per_layer = HIDDEN + HIDDEN + HIDDEN + INTERMEDIATE
    assert method.trainable_parameters()[0] == LAYERS * per_layer == 640
    assert "(IA)^3" in method.variant
    losses = train_a_few_steps(method, batch)
    assert losses[-1] < losses[0]


def test_ia3_needs_targets_for_unknown_models():
    with pytest.raises(ValueError, match="IA3"):
        IA3(TinyCNN())


def test_lora_finds_clip_style_projections():
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    method = LoRA(CLIPVisionModel(config), r=2)
    assert method.targets == ["q_proj", "v_proj"]
    assert method.trainable_parameters()[0] == 2 * 2 * 2 * (32 + 32)
