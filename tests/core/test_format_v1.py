"""Side networks saved in format 1 (unipt 0.1: positional sub-layer keys, resolved values inside the
config) still load, under the named sub-layers of format 2, and compute exactly what they computed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import unipt
from unipt.pretrained import FORMAT_VERSION

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from format_v1_cases import CASES  # noqa: E402

ROOT = FIXTURES / "format_v1"


def load_case(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    backbone = CASES[name].backbone()
    backbone.load_state_dict(load_file(str(ROOT / name / "backbone.safetensors")))
    io = load_file(str(ROOT / name / "io.safetensors"))
    inputs = {k.removeprefix("input."): v for k, v in io.items() if k.startswith("input.")}
    outputs = {k.removeprefix("output."): v for k, v in io.items() if k.startswith("output.")}
    return backbone.eval(), inputs, outputs


@pytest.mark.parametrize("name", sorted(CASES))
def test_format_1_loads_and_computes_what_it_did(name):
    assert json.loads((ROOT / name / "side" / "unipt_config.json").read_text())["format_version"] == 1
    backbone, inputs, expected = load_case(name)
    model = unipt.UniPTModel.from_pretrained(backbone, ROOT / name / "side").eval()
    old = load_file(str(ROOT / name / "side" / "unipt_side.safetensors"))
    new = model.side.state_dict()
    assert len(new) == len(old) and sum(v.numel() for v in new.values()) == sum(v.numel() for v in old.values())
    assert not any(part.isdigit() for key in new for part in key.split(".")[-2:-1])  # sub-layers have names
    with torch.no_grad():
        out = model(**inputs)
    torch.testing.assert_close(out.last_hidden_state, expected["last_hidden_state"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.pooled, expected["pooled"], rtol=1e-5, atol=1e-5)


def test_format_1_resaves_as_the_current_format(tmp_path):
    backbone, inputs, expected = load_case("clipvil")
    model = unipt.UniPTModel.from_pretrained(backbone, ROOT / "clipvil" / "side").eval()
    model.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "unipt_config.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION == 2 and "resolved" in meta
    keys = set(load_file(str(tmp_path / "unipt_side.safetensors")))
    assert {"branch.guide.linear.weight", "branch.layers.0.norm.bias", "branch.fusion.fc1.weight",
            "branch.fusion.fc2.weight", "branch.fusion.norm.weight", "up.linear.weight"} <= keys
    again = unipt.UniPTModel.from_pretrained(backbone, tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).last_hidden_state, expected["last_hidden_state"],
                                   rtol=1e-5, atol=1e-5)
    model.load_pretrained(ROOT / "clipvil" / "side")  # a model built from the format-1 config reads it too
