"""Reading features out of a backbone, for the baselines only.

Two small jobs: turn whatever a backbone returns into tokens ``[B, L, D]``, and collect its per-layer
hidden states. The second is deliberately one function (:func:`collect_hidden_states`) so it can be
swapped for the general tapper in ``unipt.taps`` without touching the methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from unipt.outputs import AdaptedOutput, masked_mean


def as_tokens(x: torch.Tensor) -> torch.Tensor:
    """Lay a feature tensor out as tokens.

    ``[B, C, H, W]`` feature map -> ``[B, H*W, C]``; ``[B, L, D]`` stays; ``[B, D]`` -> ``[B, 1, D]``.
    """
    if x.dim() == 4:
        return x.flatten(2).transpose(1, 2)
    if x.dim() == 3:
        return x
    if x.dim() == 2:
        return x.unsqueeze(1)
    raise ValueError(f"cannot lay out a {x.dim()}-d tensor of shape {tuple(x.shape)} as tokens")


def primary_tensor(output: Any) -> torch.Tensor:
    """The main feature tensor of a backbone's output.

    Hugging Face outputs -> ``last_hidden_state``; tuples/lists -> their first element; tensors as is.
    For a torchvision classifier pass a feature extractor (e.g. the network without its ``fc``/``avgpool``)
    so this is the final feature map, not the logits.
    """
    if isinstance(output, torch.Tensor):
        return output
    hidden = getattr(output, "last_hidden_state", None)
    if hidden is None and isinstance(output, Mapping):
        hidden = output.get("last_hidden_state")
    if isinstance(hidden, torch.Tensor):
        return hidden
    if isinstance(output, Sequence) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot find a feature tensor in a backbone output of type {type(output).__name__}")


def token_output(features: torch.Tensor, attention_mask: torch.Tensor | None) -> AdaptedOutput:
    """Wrap final features into an :class:`AdaptedOutput` (tokens, mask, masked-mean pooled ``[B, D]``).

    The mask only applies to sequence outputs; grid tokens from a feature map are all real.
    """
    tokens = as_tokens(features)
    mask = attention_mask if features.dim() == 3 else None
    return AdaptedOutput(last_hidden_state=tokens, attention_mask=mask, pooled=masked_mean(tokens, mask))


def is_hf_model(backbone: nn.Module) -> bool:
    """True for Hugging Face ``PreTrainedModel`` instances (they accept ``output_hidden_states``)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a core dependency
        return False
    return isinstance(backbone, PreTrainedModel)


def call_backbone(backbone: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``backbone(*args, **kwargs)``; a plain (non Hugging Face) CNN given only ``pixel_values`` gets it
    positionally, as torchvision / timm / EfficientNet models expect (their forward takes ``x``)."""
    if not args and set(kwargs) == {"pixel_values"} and not is_hf_model(backbone):
        return backbone(kwargs["pixel_values"])
    return backbone(*args, **kwargs)


def final_feature_layer(backbone: nn.Module, probe_size: int = 224) -> str | None:
    """Where a backbone's *features* come from, when its output is not them.

    ``None`` for Hugging Face models and for networks that already return tokens ``[B, L, D]`` or a
    feature map ``[B, C, H, W]``. A plain CNN classifier (EfficientNet, torchvision ResNet) returns
    logits: then the deepest spatial stage (the same module UniPT and the frozen probe read) is
    returned, to be hooked by :func:`backbone_features`. One probe forward in eval mode decides.
    """
    if is_hf_model(backbone):
        return None
    from unipt.taps.auto import find_cnn_stages, probe_inputs

    inputs = probe_inputs(backbone, probe_size)
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            try:
                output = call_backbone(backbone, (), inputs)
            except Exception:  # not an image model (e.g. a custom token encoder): read its output
                return None
            try:
                if primary_tensor(output).dim() in (3, 4):
                    return None
            except TypeError:
                pass
            return find_cnn_stages(backbone, inputs, max_stages=1)[-1]
    finally:
        backbone.train(was_training)


def backbone_features(
    backbone: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], final_layer: str | None
) -> torch.Tensor:
    """The backbone's final features with the caller's grad mode (gradients flow when enabled).

    ``final_layer`` from :func:`final_feature_layer`: ``None`` reads the backbone's output, a name hooks
    that module during the (whole) forward.
    """
    if final_layer is None:
        return primary_tensor(call_backbone(backbone, args, kwargs))
    hidden, _ = collect_hidden_states(backbone, args, kwargs, [final_layer])
    return hidden[0]


def _hook_tensor(output: Any) -> torch.Tensor:
    """A module's output reduced to its feature tensor (blocks often return tuples)."""
    return primary_tensor(output)


def collect_hidden_states(
    backbone: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    layer_names: Sequence[str] | None = None,
) -> tuple[list[torch.Tensor], Any]:
    """Run ``backbone(*args, **kwargs)`` once and return ``(hidden_states, output)``.

    The caller decides the grad mode (the side-network baselines call this under ``torch.no_grad()``).

    * ``layer_names is None``: the backbone must be a Hugging Face model; it is called with
      ``output_hidden_states=True`` and its ``hidden_states`` (embeddings + every layer, or the stem +
      every stage for CNNs) are returned, each ``[B, L, D]`` or ``[B, C, H, W]``.
    * otherwise: forward hooks on those named submodules, outputs returned in the order given.
    """
    if layer_names is None:
        if not is_hf_model(backbone):
            raise ValueError("layer_names is required for backbones that are not Hugging Face models")
        output = backbone(*args, **kwargs, output_hidden_states=True)
        hidden = getattr(output, "hidden_states", None)
        if hidden is None:
            raise ValueError(f"{type(backbone).__name__} returned no hidden_states")
        return list(hidden), output

    modules = dict(backbone.named_modules())
    missing = [n for n in layer_names if n not in modules]
    if missing:
        raise KeyError(f"no submodule named {missing} in {type(backbone).__name__}")
    captured: dict[str, torch.Tensor] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, _hook_tensor(out))
        )
        for name in layer_names
    ]
    try:
        output = call_backbone(backbone, args, kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return [captured[name] for name in layer_names], output
