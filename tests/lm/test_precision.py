"""The frozen backbone in other precisions: bf16/fp16 casts, int8 weight-only, torch.ao dynamic int8;
memory of the frozen weights; an int8 backbone still trains the side network."""

import pytest
import torch
from torch import nn

from unipt.config import UniPTConfig
from unipt.lm import Int8Linear, UniPTForCausalLM, apply_backbone_precision, frozen_weight_bytes

from .conftest import backbone_logits, randomise_up_projection, training_losses


def causal(**fields):
    return UniPTConfig(task_type="causal_lm", **fields)


def test_int8_linear_is_within_half_a_step_of_the_float_weights():
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    before = linear.weight.detach().clone()
    q = Int8Linear.from_module(linear)
    assert torch.equal(linear.weight, before)  # quantising copies; the float module is left as it was
    assert q.weight_int8.dtype == torch.int8
    step = linear.weight.abs().amax(1, keepdim=True) / 127
    assert torch.all((q.dequantized(torch.float32) - linear.weight).abs() <= step / 2 + 1e-7)
    x = torch.randn(5, 64, requires_grad=True)
    q(x).sum().backward()  # gradients reach the input, never the frozen weight
    assert x.grad is not None and not any(t.requires_grad for t in q.buffers())
    from transformers.pytorch_utils import Conv1D

    conv = Conv1D(32, 64)  # GPT-2's transposed linear
    nn.init.normal_(conv.weight)
    assert torch.allclose(Int8Linear.from_module(conv)(x), conv(x), atol=0.05 * conv(x).abs().max().item())


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_int8_backbone_stays_close_and_holds_its_blocks_in_a_quarter_of_the_bytes(tiny_lm, tokens, family):
    reference = backbone_logits(tiny_lm(family), tokens)
    backbone = tiny_lm(family)
    fp32_bytes = frozen_weight_bytes(backbone)
    model = UniPTForCausalLM(backbone, causal(backbone_quantization="int8"))
    head = backbone.get_output_embeddings()
    assert type(head) is nn.Linear  # the head is not quantised (gradients flow through it)
    quantised = [m for m in backbone.modules() if isinstance(m, Int8Linear)]
    assert quantised and not any(type(m) is nn.Linear for m in backbone.modules() if m is not head)
    assert model.frozen_weight_bytes() < fp32_bytes
    block_bytes = sum(m.weight_int8.numel() for m in quantised)
    assert fp32_bytes - model.frozen_weight_bytes() >= 3 * block_bytes - 4 * sum(m.out_features for m in quantised)
    logits = model(**tokens).logits
    assert (logits - reference).abs().max() < 0.05 * reference.abs().max()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_backbone_with_a_float32_side_network(tiny_lm, tokens, dtype):
    backbone = tiny_lm("qwen2")
    model = UniPTForCausalLM(backbone, causal(backbone_dtype=dtype))
    assert all(p.dtype == getattr(torch, dtype) for p in backbone.parameters())
    assert all(p.dtype == torch.float32 for p in model.side.parameters())
    expected = backbone_logits(backbone, tokens)
    assert torch.equal(model(**tokens).logits, expected)  # zero-init: exactly the cast backbone
    randomise_up_projection(model)
    labels = tokens["input_ids"].masked_fill(tokens["attention_mask"] == 0, -100)
    model(**tokens, labels=labels).loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.side.parameters())


def test_bfloat16_side_network(tiny_lm, tokens):
    model = UniPTForCausalLM(tiny_lm("llama"), causal(side_dtype="bfloat16", backbone_dtype="bfloat16"))
    assert all(p.dtype == torch.bfloat16 for p in model.side.parameters())
    randomise_up_projection(model)
    out = model(**tokens, labels=tokens["input_ids"].masked_fill(tokens["attention_mask"] == 0, -100))
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_torch_ao_dynamic_int8_backbone(tiny_lm, tokens):
    reference = backbone_logits(tiny_lm("llama"), tokens)
    backbone = tiny_lm("llama")
    model = UniPTForCausalLM(backbone, causal(backbone_quantization="int8-dynamic"))
    assert model.frozen_weight_bytes() < frozen_weight_bytes(tiny_lm("llama"))
    assert (model(**tokens).logits - reference).abs().max() < 0.1 * reference.abs().max()


def test_int8_backbone_trains_and_its_loss_falls(tiny_lm):
    torch.manual_seed(0)
    model = UniPTForCausalLM(tiny_lm("llama"), causal(backbone_quantization="int8", side_width=32))
    data = torch.randint(0, 256, (4, 12), generator=torch.Generator().manual_seed(7))
    losses = training_losses(model, data, data, steps=25, lr=1e-2)
    assert losses[-1] < losses[0] - 1.0  # ln(259) = 5.56 at the start: a clear fall, not noise
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_unknown_or_unavailable_quantisation_is_named(tiny_lm):
    with pytest.raises(ValueError, match="backbone_quantization"):
        apply_backbone_precision(tiny_lm("llama"), None, "int4")
    with pytest.raises(ValueError, match="backbone_dtype"):
        apply_backbone_precision(tiny_lm("llama"), "float8", "none")
    if not torch.cuda.is_available():
        with pytest.raises((ImportError, ValueError), match="bitsandbytes|CUDA"):
            apply_backbone_precision(tiny_lm("llama"), None, "bnb-8bit")
