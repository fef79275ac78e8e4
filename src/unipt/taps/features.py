"""A backbone's *final* features and its per-layer states, with the caller's grad mode.

For methods that run the backbone themselves (full fine-tuning, BitFit, LoRA, IA3 differentiate it; LST
reads its layers under ``torch.no_grad()``). The backbone is called as the tapper calls it
(:func:`~unipt.taps.auto.call_backbone`), its output reduced with :func:`~unipt.taps.hooks.first_tensor`
and its layers read with :func:`~unipt.taps.hooks.capture_outputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from unipt.taps.auto import call_backbone, find_cnn_stages, is_hf_model, probe_inputs
from unipt.taps.hooks import capture_outputs, first_tensor


def final_feature_layer(backbone: nn.Module, probe_size: int = 224) -> str | None:
    """Where a backbone's *features* come from, when its output is not them.

    ``None`` for Hugging Face models and for networks that already return tokens ``[B, L, D]`` or a
    feature map ``[B, C, H, W]``. A plain CNN classifier (EfficientNet, torchvision ResNet) returns
    logits: then the deepest spatial stage (the same module UniPT and the frozen probe read) is
    returned, to be hooked by :func:`backbone_features`. One probe forward in eval mode decides.
    """
    if is_hf_model(backbone):
        return None
    inputs = probe_inputs(backbone, probe_size)
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            try:
                output = call_backbone(backbone, inputs)
            except Exception:  # not an image model (e.g. a custom token encoder): read its output
                return None
            try:
                if first_tensor(output).dim() in (3, 4):
                    return None
            except TypeError:
                pass
            return find_cnn_stages(backbone, inputs, max_stages=1)[-1]
    finally:
        backbone.train(was_training)


def backbone_features(backbone: nn.Module, inputs: dict[str, Any], final_layer: str | None,
                      args: tuple[Any, ...] = ()) -> torch.Tensor:
    """The backbone's final features with the caller's grad mode (gradients flow when enabled).

    ``final_layer`` from :func:`final_feature_layer`: ``None`` reads the backbone's output, a name hooks
    that module during the (whole) forward.
    """
    if final_layer is None:
        return first_tensor(call_backbone(backbone, inputs, *args))
    hidden, _ = collect_hidden_states(backbone, inputs, [final_layer], args)
    return hidden[0]


def collect_hidden_states(backbone: nn.Module, inputs: dict[str, Any], layer_names: Sequence[str] | None = None,
                          args: tuple[Any, ...] = ()) -> tuple[list[torch.Tensor], Any]:
    """Run the backbone once and return ``(hidden_states, output)``; the caller decides the grad mode.

    * ``layer_names is None``: the backbone must be a Hugging Face model; it is called with
      ``output_hidden_states=True`` and its ``hidden_states`` (embeddings + every layer, or the stem +
      every stage for CNNs) are returned, each ``[B, L, D]`` or ``[B, C, H, W]``.
    * otherwise: forward hooks on those named submodules, outputs returned in the order given.
    """
    if layer_names is None:
        if not is_hf_model(backbone):
            raise ValueError("layer_names is required for backbones that are not Hugging Face models")
        output = call_backbone(backbone, inputs, *args, output_hidden_states=True)
        hidden = getattr(output, "hidden_states", None)
        if hidden is None:
            raise ValueError(f"{type(backbone).__name__} returned no hidden_states")
        return list(hidden), output
    modules = dict(backbone.named_modules())
    missing = [n for n in layer_names if n not in modules]
    if missing:
        raise KeyError(f"no submodule named {missing} in {type(backbone).__name__}")
    with capture_outputs(backbone, list(layer_names)) as capture:
        output = call_backbone(backbone, inputs, *args)
    return [capture.outputs[name] for name in layer_names], output
