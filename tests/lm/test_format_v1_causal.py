"""Causal side networks saved in format 1 (numbered sub-layers: ``guide_proj.0``, ``down_projs.0.1``,
``up_proj.1``) load into the named sub-layers of format 2 (``guide_proj.linear``, ``down_projs.0.norm``,
``up_proj.linear``) and give the logits they gave when saved; saving again writes format 2, which loads
back to the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unipt.lm import UniPTForCausalLM
from unipt.lm.backbone import tiny_decoder
from unipt.pretrained import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME

FIXTURES = Path(__file__).parent / "fixtures" / "format_v1_causal"
CASES = {"llama_linear_norm": "llama", "gpt2_relu_mlp": "gpt2"}


def backbone_of(case: str) -> torch.nn.Module:
    torch.manual_seed(0)
    backbone = tiny_decoder(CASES[case])
    backbone.load_state_dict(load_file(str(FIXTURES / case / "backbone.safetensors")))
    return backbone.eval()


@pytest.mark.parametrize("case", sorted(CASES))
def test_format_1_loads_with_the_logits_it_had(case, tmp_path):
    side = FIXTURES / case / "side"
    assert json.loads((side / CONFIG_NAME).read_text())["format_version"] == 1
    assert any(k.startswith("guide_proj.") for k in load_file(str(side / WEIGHTS_NAME)))
    io = load_file(str(FIXTURES / case / "io.safetensors"))
    model = UniPTForCausalLM.from_pretrained(backbone_of(case), side)
    assert "guide_proj.linear.weight" in model.side.state_dict() and "up_proj.linear.weight" in model.side.state_dict()
    with torch.no_grad():
        logits = model(io["input_ids"], io["attention_mask"]).logits
    assert torch.allclose(logits, io["logits"], atol=1e-5)

    model.save_pretrained(tmp_path / "again", model_card=False)
    assert json.loads((tmp_path / "again" / CONFIG_NAME).read_text())["format_version"] == FORMAT_VERSION
    again = UniPTForCausalLM.from_pretrained(backbone_of(case), tmp_path / "again")
    with torch.no_grad():
        assert torch.equal(again(io["input_ids"], io["attention_mask"]).logits, logits)
