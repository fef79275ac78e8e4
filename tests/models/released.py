"""Tiny random checkpoints in the released CLIP-ViL key layouts, written from the released code's module
definitions (``CLIP-ViL/src/lxrt/modeling.py``: ``LXRTModel``, ``LXRTEncoder.construct_side_network``,
``BertVisualAnswerHead``, ``BertPreTrainingHeads``; ``clip/model.py``), not from the product's mapping, so
loading them checks that mapping; plus a stand-in for ``open_clip`` (not installed here) and a functional
re-statement of the released side-network forward to compare outputs against.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SIZES = dict(vocab=30522, width=32, layers=2, inter=64, positions=40, feat=24, pos_num=6, side=16, answers=7)


def released_shapes(layout: str = "pretrained", side: bool = False, grid_positions: bool = True,
                    s: dict | None = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a released checkpoint (``pretrained``: ``LXRTPretraining``; ``finetuned``: ``VQAModel``)."""
    s = {**SIZES, **(s or {})}
    d, i, v, f, h = s["width"], s["inter"], s["vocab"], s["feat"], s["side"]
    p = "bert." if layout == "pretrained" else "lxrt_encoder.model.bert."
    shapes: dict[str, tuple[int, ...]] = {
        p + "embeddings.word_embeddings.weight": (v, d),
        p + "embeddings.position_embeddings.weight": (s["positions"], d),
        p + "embeddings.token_type_embeddings.weight": (2, d),
        p + "embeddings.LayerNorm.weight": (d,), p + "embeddings.LayerNorm.bias": (d,),
        p + "encoder.visn_fc.visn_fc.weight": (d, f), p + "encoder.visn_fc.visn_fc.bias": (d,),
        p + "encoder.visn_fc.visn_layer_norm.weight": (d,), p + "encoder.visn_fc.visn_layer_norm.bias": (d,),
        p + "encoder.visn_fc.box_fc.weight": (d, 4), p + "encoder.visn_fc.box_fc.bias": (d,),
        p + "encoder.visn_fc.box_layer_norm.weight": (d,), p + "encoder.visn_fc.box_layer_norm.bias": (d,),
        p + "pooler.dense.weight": (d, d), p + "pooler.dense.bias": (d,),
    }
    for n in range(s["layers"]):
        q = f"{p}encoder.layer.{n}."
        for name in ("query", "key", "value"):
            shapes[f"{q}attention.self.{name}.weight"] = (d, d)
            shapes[f"{q}attention.self.{name}.bias"] = (d,)
        shapes.update({
            q + "attention.output.dense.weight": (d, d), q + "attention.output.dense.bias": (d,),
            q + "attention.output.LayerNorm.weight": (d,), q + "attention.output.LayerNorm.bias": (d,),
            q + "intermediate.dense.weight": (i, d), q + "intermediate.dense.bias": (i,),
            q + "output.dense.weight": (d, i), q + "output.dense.bias": (d,),
            q + "output.LayerNorm.weight": (d,), q + "output.LayerNorm.bias": (d,),
        })
    if grid_positions:
        shapes[p + "encoder.visual_pos.x_position_embedding.weight"] = (s["pos_num"], f)
        shapes[p + "encoder.visual_pos.y_position_embedding.weight"] = (s["pos_num"], f)
    if side:
        q = p + "encoder."
        shapes.update({q + "side_first_downsample_l.0.weight": (h, d), q + "side_first_downsample_l.0.bias": (h,),
                       q + "side_first_downsample_l.1.weight": (h,), q + "side_first_downsample_l.1.bias": (h,),
                       q + "side_final_upsample_l.0.weight": (d, h), q + "side_final_upsample_l.0.bias": (d,),
                       q + "side_projection_l.0.weight": (d, h), q + "side_projection_l.0.bias": (d,),
                       q + "side_projection_l.2.weight": (h, d), q + "side_projection_l.2.bias": (h,),
                       q + "side_projection_l.3.weight": (h,), q + "side_projection_l.3.bias": (h,),
                       q + "side_gate_layer_l.weight": (1, h), q + "side_gate_layer_l.bias": (1,)})
        for n in range(s["layers"]):
            shapes.update({f"{q}side_downsamples_l.{n}.0.weight": (h, d), f"{q}side_downsamples_l.{n}.0.bias": (h,),
                           f"{q}side_downsamples_l.{n}.1.weight": (h,), f"{q}side_downsamples_l.{n}.1.bias": (h,)})
    head = "answer_head.logit_fc." if layout == "pretrained" else "logit_fc."
    a = s["answers"]
    shapes.update({head + "0.weight": (2 * d, d), head + "0.bias": (2 * d,), head + "2.weight": (2 * d,),
                   head + "2.bias": (2 * d,), head + "3.weight": (a, 2 * d), head + "3.bias": (a,)})
    if layout == "pretrained":
        shapes.update({"cls.predictions.bias": (v,), "cls.predictions.transform.dense.weight": (d, d),
                       "cls.predictions.transform.dense.bias": (d,), "cls.predictions.transform.LayerNorm.weight": (d,),
                       "cls.predictions.transform.LayerNorm.bias": (d,), "cls.predictions.decoder.weight": (v, d),
                       "cls.seq_relationship.weight": (2, d), "cls.seq_relationship.bias": (2,),
                       "obj_predict_head.transform.dense.weight": (d, d), "obj_predict_head.transform.dense.bias": (d,),
                       "obj_predict_head.decoder_dict.obj.weight": (1600, d)})
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors (LayerNorm weights near 1 so the maths stays well conditioned)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        t = torch.randn(shape, generator=g) * 0.05
        if "LayerNorm.weight" in key or "layer_norm.weight" in key or key.endswith((".1.weight", "_l.3.weight")):
            t = t + 1.0
        state[key] = t
    return state


def with_clip(state: dict[str, torch.Tensor], visual: nn.Module, prefix: str = "bert.") -> dict[str, torch.Tensor]:
    """Add the CLIP model the released encoder carries: the image tower and the text-tower leftovers."""
    out = dict(state)
    out.update({f"{prefix}encoder.visual_model.visual.{k}": v.clone() for k, v in visual.state_dict().items()})
    out.update({f"{prefix}encoder.visual_model.{k}": torch.zeros(shape) for k, shape in
                (("token_embedding.weight", (49408, 4)), ("positional_embedding", (77, 4)), ("ln_final.weight", (4,)),
                 ("ln_final.bias", (4,)), ("text_projection", (4, 4)), ("logit_scale", ()))})
    return out


def save(state: dict[str, torch.Tensor], path: Path, ddp: bool = False) -> Path:
    """``torch.save`` as the released trainers do (DDP runs prefix ``module.``)."""
    torch.save({("module." + k if ddp else k): v for k, v in state.items()}, path)
    return path


# ---------------------------------------------------------------------------------------- open_clip stand-in
class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv3, self.bn3 = nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn3(self.conv3(F.relu(self.bn2(self.conv2(x))))))


class TinyModifiedResNet(nn.Module):
    """The OpenAI / open_clip ``ModifiedResNet`` interface (``stem``, ``layer1..4``, ``attnpool``), tiny."""

    def __init__(self, out: int = SIZES["feat"]):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, 2, 1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4)
        self.conv3, self.bn3 = nn.Conv2d(4, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8)
        self.avgpool = nn.AvgPool2d(2)
        self.layer1 = nn.Sequential(_Block(8, 8, 1))
        self.layer2 = nn.Sequential(_Block(8, 12, 2))
        self.layer3 = nn.Sequential(_Block(12, 16, 2))
        self.layer4 = nn.Sequential(_Block(16, out, 2))
        self.attnpool = nn.Linear(out, 4)  # never run for CLIP-ViL's grid

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = F.relu(bn(conv(x)))
        return self.avgpool(x)


def install_open_clip_stand_in(monkeypatch) -> list[tuple[str, object]]:
    """Put a fake ``open_clip`` module in ``sys.modules``; returns the calls it received."""
    calls: list[tuple[str, object]] = []

    def create_model(name: str, pretrained: object = None) -> types.SimpleNamespace:
        calls.append((name, pretrained))
        return types.SimpleNamespace(visual=TinyModifiedResNet())

    monkeypatch.setitem(sys.modules, "open_clip", types.SimpleNamespace(create_model=create_model))
    return calls


# ---------------------------------------------------------------------------------------- released side forward
def released_side_forward(sd: dict[str, torch.Tensor], hidden: list[torch.Tensor], mask: torch.Tensor,
                          prefix: str) -> torch.Tensor:
    """``LXRTEncoder.forward``'s side branch, restated with plain tensor ops on the released keys."""
    def lin(x, name):
        return F.linear(x, sd[prefix + name + ".weight"], sd[prefix + name + ".bias"])

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], sd[prefix + name + ".weight"], sd[prefix + name + ".bias"])

    def down(x, name):
        return ln(lin(x, name + ".0"), name + ".1")

    feats = [down(hidden[0], "side_first_downsample_l")]
    feats += [down(h, f"side_downsamples_l.{k}") for k, h in enumerate(hidden[1:])]
    anchor = feats[-1]
    m = mask.float()

    def agg(x):
        return (x * m[..., None]).sum(1) / m.sum(1, keepdim=True)

    merged, conf = [], []
    for target in feats[:-1]:
        w = torch.relu(anchor @ target.transpose(1, 2) * m[:, None, :])
        w = w / (w.abs().sum(-1, keepdim=True) + 1e-6) + torch.eye(w.shape[-1])
        merged.append(w @ target)
        conf.append(lin(agg(anchor) * agg(target), "side_gate_layer_l"))
    alpha = torch.softmax(torch.cat(conf, 1), 1)
    mix = (torch.stack(merged, 1) * alpha[:, :, None, None]).sum(1)
    proj = ln(lin(torch.relu(lin(mix, "side_projection_l.0")), "side_projection_l.2"), "side_projection_l.3")
    return lin(anchor + proj, "side_final_upsample_l.0")
