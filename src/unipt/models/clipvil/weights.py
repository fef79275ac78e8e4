"""Released CLIP-ViL / LXMERT-style checkpoints <-> this package's modules: the key mapping.

Two released layouts are read (``module.`` prefixes from DataParallel / DDP are dropped first):

* pre-training (``snap/pretrained/CLIP_VL_RN50x4/Epoch11_LXRT.pth``, class ``LXRTPretraining``):
  ``bert.<encoder>``, ``answer_head.logit_fc.{0,2,3}`` (the pre-trained QA head over LXMERT's answer table),
  and the pre-training heads ``cls.*`` / ``obj_predict_head.*`` (not used for VQA / GQA);
* fine-tuned VQA / GQA (``VQAModel`` / ``GQAModel``): ``lxrt_encoder.model.bert.<encoder>`` and
  ``logit_fc.{0,2,3}``; UniPT runs add the side network inside the encoder (``encoder.side_*``).

Inside ``<encoder>`` the names are this package's :class:`~unipt.models.clipvil.encoder.CLIPViLBackbone`
names (``embeddings.*``, ``encoder.visn_fc.*``, ``encoder.layer.<i>.*``, ``encoder.visual_pos.*``,
``pooler.dense.*``), plus the CLIP model at ``encoder.visual_model.*`` (its image tower ``visual.*`` in
OpenAI's layout; its text-tower leftovers ``token_embedding`` / ``positional_embedding`` / ``ln_final`` /
``text_projection`` / ``logit_scale`` are never used) and UniPT's side network, renamed by :data:`SIDE_KEYS`.
Anything else is refused with the offending keys named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

FINETUNED_PREFIX = "lxrt_encoder.model.bert."
PRETRAINED_PREFIX = "bert."
CLIP_TEXT_LEFTOVERS = ("token_embedding.", "positional_embedding", "ln_final.", "text_projection", "logit_scale")
IGNORED_HEADS = {"cls.": "masked-LM / matching pre-training head", "obj_predict_head.": "object pre-training head"}


def side_key_table(num_layers: int) -> dict[str, str]:
    """Released side-network module prefixes -> this package's ``UniPTSideNetwork`` prefixes.

    Tap 0 (the joint embedding) is ``side_first_downsample_l``; tap ``k`` (layer ``k``) is
    ``side_downsamples_l.<k-1>``; the last one (layer ``num_layers``) projects the guide.
    """
    downs = {"encoder.side_first_downsample_l.": "branch.layers.0."}
    for k in range(num_layers - 1):
        downs[f"encoder.side_downsamples_l.{k}."] = f"branch.layers.{k + 1}."
    downs[f"encoder.side_downsamples_l.{num_layers - 1}."] = "branch.guide."
    # The released modules are nn.Sequential: Linear -> LayerNorm (down-projections), Linear -> ReLU ->
    # Linear -> LayerNorm (fusion P); ours name those sub-layers.
    table = {f"{theirs}{i}.": f"{ours}{name}." for theirs, ours in downs.items() for i, name in ((0, "linear"),
                                                                                                  (1, "norm"))}
    for i, name in ((0, "fc1"), (2, "fc2"), (3, "norm")):
        table[f"encoder.side_projection_l.{i}."] = f"branch.fusion.{name}."
    table["encoder.side_gate_layer_l."] = "branch.aggregation.gate."
    table["encoder.side_final_upsample_l.0."] = "up.linear."
    return table


def rename(state: dict[str, torch.Tensor], table: dict[str, str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename keys by longest matching prefix; returns (renamed, keys no prefix matched)."""
    prefixes = sorted(table, key=len, reverse=True)
    out, unmatched = {}, []
    for key, value in state.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            unmatched.append(key)
        else:
            out[table[prefix] + key[len(prefix):]] = value
    return out, unmatched


@dataclass
class CheckpointParts:
    """A released checkpoint split by owner, every key accounted for.

    Attributes:
        layout: ``"pretrained"`` or ``"finetuned"``.
        backbone: the encoder in :class:`CLIPViLBackbone` names, without ``encoder.visual_model``.
        visual: the CLIP image tower (``visual.*``, OpenAI layout), empty when the checkpoint has none.
        side: UniPT's side network in ``UniPTSideNetwork`` names, empty when it has none.
        head: a fine-tuned answer head (``0/2/3.weight|bias`` of ``logit_fc``), empty when none.
        pretrained_answer_head: the pre-trained QA head (same names), empty when none.
        ignored: key -> why it is not loaded (pre-training heads, CLIP text-tower leftovers).
    """

    layout: str
    backbone: dict[str, torch.Tensor] = field(default_factory=dict)
    visual: dict[str, torch.Tensor] = field(default_factory=dict)
    side: dict[str, torch.Tensor] = field(default_factory=dict)
    head: dict[str, torch.Tensor] = field(default_factory=dict)
    pretrained_answer_head: dict[str, torch.Tensor] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint file (``.safetensors``, or a torch ``.pth`` / ``.bin`` read with ``weights_only=True``,
    so no pickled code ever runs) as a flat ``{name: tensor}``."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"CLIP-ViL checkpoint {file} not found (the released files are e.g. "
                                "snap/pretrained/CLIP_VL_RN50x4/Epoch11_LXRT.pth)")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # the restricted unpickler names what it refused
        raise ValueError(f"{file} is not a plain tensor checkpoint readable with weights_only=True: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{file} does not hold a flat state dict of tensors")
    return dict(state)


def split_checkpoint(state: dict[str, torch.Tensor], num_layers: int | None = None) -> CheckpointParts:
    """Sort every key of a released state dict into :class:`CheckpointParts`.

    Raises:
        ValueError: keys that belong to no known part (named, with the layouts that are understood).
    """
    state = {_strip_module(k): v for k, v in state.items()}
    finetuned = any(k.startswith(FINETUNED_PREFIX) for k in state)
    prefix = FINETUNED_PREFIX if finetuned else PRETRAINED_PREFIX
    parts = CheckpointParts("finetuned" if finetuned else "pretrained")
    encoder: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if key.startswith(prefix):
            encoder[key[len(prefix):]] = value
        elif finetuned and key.startswith("logit_fc."):
            parts.head[key[len("logit_fc."):]] = value
        elif not finetuned and key.startswith("answer_head.logit_fc."):
            parts.pretrained_answer_head[key[len("answer_head.logit_fc."):]] = value
        elif not finetuned and (reason := next((r for p, r in IGNORED_HEADS.items() if key.startswith(p)), None)):
            parts.ignored[key] = reason
        else:
            unknown.append(key)
    if not encoder:
        raise ValueError("no CLIP-ViL encoder weights found: expected keys starting with "
                         f"{PRETRAINED_PREFIX!r} (pre-training checkpoint) or {FINETUNED_PREFIX!r} (VQA / GQA "
                         f"checkpoint); the file has e.g. {sorted(state)[:5]}")
    layers = num_layers or 1 + max((int(m.group(1)) for k in encoder if (m := re.match(r"encoder\.layer\.(\d+)\.", k))),
                                   default=-1)
    side = {k: v for k, v in encoder.items() if k.startswith("encoder.side_")}
    parts.side, bad_side = rename(side, side_key_table(layers))
    unknown += [prefix + k for k in bad_side]
    for key, value in encoder.items():
        if key in side:
            continue
        if key.startswith("encoder.visual_model."):
            inner = key[len("encoder.visual_model."):]
            if inner.startswith("visual."):
                parts.visual[inner] = value
            elif inner.startswith(CLIP_TEXT_LEFTOVERS):
                parts.ignored[prefix + key] = "CLIP text-tower leftover (CLIP-ViL never runs it)"
            else:
                unknown.append(prefix + key)
        else:
            parts.backbone[key] = value
    if unknown:
        raise ValueError(f"{len(unknown)} key(s) of the checkpoint belong to no part of CLIP-ViL: "
                         f"{_show(unknown)}. Understood: {PRETRAINED_PREFIX}* + answer_head.* + cls.* + "
                         f"obj_predict_head.* (pre-training) or {FINETUNED_PREFIX}* + logit_fc.* (VQA / GQA)")
    return parts


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str, source: str,
                skip_prefixes: tuple[str, ...] = ()) -> None:
    """``module.load_state_dict(state)`` that names every missing / unexpected / mis-shaped key.

    Keys of ``module`` under ``skip_prefixes`` are loaded elsewhere and not required here.
    """
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(skip_prefixes)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in set(own) & set(state)
                    if state[k].shape != own[k].shape)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {_show(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {_show(unexpected)}")
    if shapes:
        problems.append(f"wrong shapes (checkpoint vs model) {len(shapes)}: {_show(shapes)}")
    if problems:
        raise ValueError(f"{source} does not fit the {what}: " + "; ".join(problems))
    module.load_state_dict(state, strict=False)


def to_released(backbone: dict[str, torch.Tensor], side: dict[str, torch.Tensor], head: dict[str, torch.Tensor],
                num_layers: int, visual: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The fine-tuned released layout (``lxrt_encoder.model.bert.*`` + ``logit_fc.*``) of this package's parts."""
    inverse = {ours: theirs for theirs, ours in side_key_table(num_layers).items()}
    renamed, unmatched = rename(side, inverse)
    if unmatched:
        raise ValueError(f"side-network keys with no released name: {_show(unmatched)}")
    out = {FINETUNED_PREFIX + k: v for k, v in {**backbone, **renamed}.items()}
    out.update({f"{FINETUNED_PREFIX}encoder.visual_model.{k}": v for k, v in (visual or {}).items()})
    out.update({f"logit_fc.{k}": v for k, v in head.items()})
    return out


def _strip_module(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module."):]
    return key.replace(".module.", ".")


def _show(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
