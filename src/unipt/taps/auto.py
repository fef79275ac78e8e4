"""Automatic tap selection: what to read from a backbone the user did not describe.

* Hugging Face models: ``output_hidden_states=True`` (BERT family, ViT, CLIP towers, ResNet, and
  encoder-decoders, whose ``encoder_hidden_states`` / ``decoder_hidden_states`` feed ``cross_stream``).
* Any other CNN (torchvision, timm, EfficientNet...): a probe forward records which modules produce
  4-D maps; the last module to finish at each resolution ends a stage, and the deepest
  ``max_stages`` stages are tapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from unipt.taps.hooks import first_tensor


def is_hf_model(model: nn.Module) -> bool:
    """True for a Hugging Face ``PreTrainedModel`` (it understands ``output_hidden_states``)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a core dependency
        return False
    return isinstance(model, PreTrainedModel)


def probe_inputs(model: nn.Module, image_size: int = 224) -> dict[str, torch.Tensor]:
    """A tiny dummy batch the backbone accepts, to discover tap shapes before training."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    if is_hf_model(model):
        name = getattr(model, "main_input_name", "input_ids")
        cfg = model.config
        if name == "input_ids":
            ids = torch.ones(1, 8, dtype=torch.long, device=device)
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            if getattr(cfg, "is_encoder_decoder", False):
                inputs["decoder_input_ids"] = ids[:, :4]
            return inputs
        if name == "pixel_values":
            side = getattr(cfg, "image_size", None) or image_size
            channels = getattr(cfg, "num_channels", 3)
            return {"pixel_values": torch.zeros(1, channels, side, side, device=device, dtype=dtype)}
        raise ValueError(
            f"cannot build a probe input for {type(model).__name__} (main input {name!r}); "
            "pass example_inputs=... to get_unipt_model"
        )
    return {"pixel_values": torch.zeros(1, 3, image_size, image_size, device=device, dtype=dtype)}


def call_backbone(model: nn.Module, inputs: Mapping[str, Any], *args: Any, **extra: Any) -> Any:
    """``model(*args, **inputs, **extra)``; a plain (non Hugging Face) module given only ``pixel_values``
    is called positionally, as torchvision / timm / EfficientNet models expect (their forward takes ``x``)."""
    if not args and not extra and not is_hf_model(model) and set(inputs) == {"pixel_values"}:
        return model(inputs["pixel_values"])
    return model(*args, **inputs, **extra)


@torch.no_grad()
def find_cnn_stages(model: nn.Module, inputs: dict[str, torch.Tensor], max_stages: int = 4) -> list[str]:
    """Names of the modules that end each spatial stage, shallow to deep (at most ``max_stages``).

    Only modules on the main path are candidates (children of the model or of its Sequential /
    ModuleList containers), so padding or branches inside a block never count. A stage ends with the
    last candidate to *finish* at a resolution (containers finish after their children). A module
    run several times is only used if that run is its last one, because a forward hook keeps a
    module's latest output.
    """
    events: list[tuple[str, tuple[int, int]]] = []

    def hook(name: str):
        def record(_m: nn.Module, _i: object, out: object) -> None:
            try:
                tensor = first_tensor(out)
            except TypeError:
                return
            if tensor.dim() == 4:
                events.append((name, tuple(tensor.shape[-2:])))
            else:
                events.append((name, (-1, -1)))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in main_path_modules(model)]
    try:
        call_backbone(model, inputs)
    finally:
        for h in handles:
            h.remove()
    last_call = {name: i for i, (name, _) in enumerate(events)}
    stages: dict[tuple[int, int], str] = {}
    for i, (name, size) in enumerate(events):
        if size == (-1, -1) or size[0] * size[1] <= 1 or last_call[name] != i:
            continue
        stages[size] = name  # later finishers at the same resolution win; dict keeps first-seen order
    if not stages:
        raise ValueError(
            f"found no 4-D feature maps in {type(model).__name__}; it does not look like a CNN. "
            "Name the layers to tap with UniPTConfig(taps=[...])"
        )
    return list(stages.values())[-max_stages:]


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def main_path_modules(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Children of ``model``, recursing into plain containers only: ``[(name, module), ...]``."""
    found = []
    for name, child in model.named_children():
        full = f"{prefix}{name}"
        found.append((full, child))
        if isinstance(child, _CONTAINERS):
            found.extend(main_path_modules(child, f"{full}."))
    return found
