"""bitsandbytes 8-bit and 4-bit (NF4) frozen backbones on CUDA: the side network trains on top of them.

Runs only where a CUDA GPU and bitsandbytes are present (``pip install 'unipt[gpu]'``); the CPU-side error
for a missing GPU is tested in ``test_precision.py``.
"""

import importlib.util

import pytest
import torch

from unipt.config import UniPTConfig
from unipt.lm import UniPTForCausalLM, frozen_weight_bytes

from .conftest import backbone_logits, training_losses

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None,
    reason="bitsandbytes backbones need a CUDA GPU and pip install 'unipt[gpu]'",
)

MODES = ["bnb-8bit", "bnb-4bit"]


def _cuda(tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.cuda() for k, v in tokens.items()}


@pytest.mark.parametrize("mode", MODES)
def test_quantised_backbone_is_smaller_stays_close_and_starts_exactly_at_itself(tiny_lm, tokens, mode):
    import bitsandbytes as bnb

    reference = backbone_logits(tiny_lm("llama").cuda(), _cuda(tokens)).float()
    fp32_bytes = frozen_weight_bytes(tiny_lm("llama"))
    backbone = tiny_lm("llama")
    model = UniPTForCausalLM(backbone, UniPTConfig(task_type="causal_lm", backbone_quantization=mode)).cuda()
    layer_type = bnb.nn.Linear8bitLt if mode == "bnb-8bit" else bnb.nn.Linear4bit
    assert any(isinstance(m, layer_type) for m in backbone.modules())
    assert model.frozen_weight_bytes() < fp32_bytes
    logits = model(**_cuda(tokens)).logits.float()
    assert torch.equal(logits, backbone_logits(backbone, _cuda(tokens)).float())  # zero-init U: the backbone
    assert (logits - reference).abs().max() < 0.25 * reference.abs().max()  # quantisation error only


@pytest.mark.parametrize("mode", MODES)
def test_side_network_trains_on_a_quantised_backbone_and_never_touches_it(tiny_lm, mode):
    torch.manual_seed(0)
    model = UniPTForCausalLM(tiny_lm("llama"), UniPTConfig(task_type="causal_lm", backbone_quantization=mode,
                                                           side_width=32)).cuda()
    data = torch.randint(0, 256, (4, 12), generator=torch.Generator().manual_seed(7)).cuda()
    losses = training_losses(model, data, data, steps=25, lr=1e-2)
    assert losses[-1] < losses[0] - 1.0  # ln(259) = 5.56 at the start
    assert all(p.grad is None for p in model.backbone.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
