"""Exact accounting with hand-computed byte counts (fp32 = 4 bytes)."""

from __future__ import annotations

import torch
from torch import nn

from unipt.bench.accounting import (
    SavedActivationMeter,
    gradient_bytes,
    optimizer_state_bytes,
    parameter_bytes,
    saved_state_bytes,
    tensor_bytes,
)

B, IN, OUT = 5, 7, 3


def test_linear_saves_exactly_its_input():
    layer = nn.Linear(IN, OUT, bias=True)
    with SavedActivationMeter(layer) as meter:
        layer(torch.randn(B, IN))
    assert meter.bytes == B * IN * 4 == 140
    assert meter.count == 1


def test_linear_on_tokens_saves_its_input():
    layer = nn.Linear(IN, OUT)
    with SavedActivationMeter(layer) as meter:
        layer(torch.randn(2, 4, IN))
    assert meter.bytes == 2 * 4 * IN * 4


def test_relu_saves_its_output():
    x = torch.randn(B, IN, requires_grad=True)
    with SavedActivationMeter() as meter:
        y = torch.relu(x * 2.0)  # multiplying by a Python scalar saves no tensor
    assert meter.bytes == B * IN * 4
    assert y.grad_fn._saved_result.data_ptr() == y.data_ptr()  # what was saved is the output


def test_a_tensor_saved_twice_counts_once():
    layer = nn.Linear(IN, OUT)
    x = torch.randn(B, IN, requires_grad=True)
    with SavedActivationMeter(layer) as meter:
        layer(torch.relu(x))  # relu's output is also the Linear's saved input
    assert meter.bytes == B * IN * 4 and meter.count == 1


def test_frozen_module_under_no_grad_saves_nothing():
    layer = nn.Linear(IN, OUT).requires_grad_(False)
    with SavedActivationMeter(layer) as meter, torch.no_grad():
        layer(torch.randn(B, IN, requires_grad=True))
    assert meter.bytes == 0 and meter.count == 0


def test_parameters_are_not_activations():
    w = nn.Parameter(torch.randn(IN, OUT))
    x = torch.randn(B, IN, requires_grad=True)
    with SavedActivationMeter() as meter:
        x @ w  # mm saves both operands; only x is an activation
    assert meter.bytes == B * IN * 4
    layer = nn.Linear(IN, OUT)
    with SavedActivationMeter(layer) as meter:
        layer(x)  # saves x and a transposed view of the weight
    assert meter.bytes == B * IN * 4


def test_views_share_one_storage():
    base = torch.randn(4, 10)
    assert tensor_bytes([base, base[:2], base.t()]) == 4 * 10 * 4


def test_parameter_gradient_and_optimizer_bytes():
    layer = nn.Linear(IN, OUT)
    params = IN * OUT + OUT
    assert parameter_bytes(layer) == gradient_bytes(layer) == params * 4 == 96
    layer.bias.requires_grad_(False)
    assert gradient_bytes(layer) == IN * OUT * 4
    assert parameter_bytes(layer, trainable_only=True) == IN * OUT * 4
    layer.bias.requires_grad_(True)
    opt = torch.optim.AdamW(layer.parameters())
    assert optimizer_state_bytes(opt) == 0  # state is created by the first step
    layer(torch.randn(B, IN)).sum().backward()
    opt.step()
    # exp_avg + exp_avg_sq per parameter, plus one fp32 scalar `step` per parameter tensor
    assert optimizer_state_bytes(opt) == 2 * params * 4 + 2 * 4


def test_saved_state_bytes_uses_the_method_or_the_trainable_params(tiny_bert):
    layer = nn.Linear(IN, OUT)
    layer.weight.requires_grad_(False)
    assert saved_state_bytes(layer) == OUT * 4  # only the trainable bias

    import unipt

    model = unipt.get_unipt_model(tiny_bert)  # a method: what save_pretrained writes, the side network
    assert saved_state_bytes(model) == sum(t.numel() * 4 for t in model.side.state_dict().values())


def test_meters_nest():
    inner_layer, outer_layer = nn.Linear(IN, IN), nn.Linear(IN, OUT)
    x = torch.randn(B, IN)
    with SavedActivationMeter() as outer:
        with SavedActivationMeter() as inner:
            h = inner_layer(x)  # saves x
        outer_layer(h)  # saves h
    assert inner.bytes == B * IN * 4
    assert outer.bytes == 2 * B * IN * 4
