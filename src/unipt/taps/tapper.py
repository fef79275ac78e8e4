"""BackboneTapper: run a frozen backbone with no autograd graph and return what UniPT reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from unipt.config import UniPTConfig
from unipt.taps.auto import call_backbone, find_cnn_stages, is_hf_model, probe_inputs
from unipt.taps.hooks import capture_outputs, resolve_module_names

FINAL_OUTPUT_CANDIDATES = ("image_embeds", "text_embeds", "pooler_output")


@dataclass
class Taps:
    """What one backbone forward hands to the side network.

    Attributes:
        hidden: tapped layers, guide last: ``[B, L, D_i]`` tokens or ``[B, C_i, H_i, W_i]`` maps.
        mask: ``[B, L]`` 1 for real tokens, or ``None``.
        final: ``[B, D]`` the frozen final embedding (single_query), or ``None``.
        class_index: ``[B]`` class-token positions, or ``None`` (token 0).
        decoder_hidden: decoder layers ``[B, Q, D]`` for ``cross_stream`` backbones.
        head_inputs: frozen outputs a task head reads unchanged (the backbone output's ``head_inputs``).
    """

    hidden: list[torch.Tensor]
    mask: torch.Tensor | None = None
    final: torch.Tensor | None = None
    class_index: torch.Tensor | None = None
    decoder_hidden: list[torch.Tensor] = field(default_factory=list)
    head_inputs: dict[str, torch.Tensor] | None = None


class BackboneTapper:
    """Reads taps from ``backbone`` according to ``config`` (``tap_source``, ``taps``...).

    The backbone always runs under ``torch.no_grad()``: nothing it computes is recorded for backward.
    """

    def __init__(self, backbone: nn.Module, config: UniPTConfig):
        self.backbone, self.config = backbone, config
        if config.tap_source is None:
            config.tap_source = "modules" if config.taps or not is_hf_model(backbone) else "hidden_states"
        if config.tap_source == "modules":
            if config.taps is None:
                config.taps = find_cnn_stages(backbone, probe_inputs(backbone, config.probe_size), config.max_stages)
            config.taps = resolve_module_names(backbone, config.taps)
            if config.decoder_taps is not None:
                config.decoder_taps = resolve_module_names(backbone, config.decoder_taps)

    @torch.no_grad()
    def __call__(self, inputs: dict[str, torch.Tensor]) -> Taps:
        cfg = self.config
        _check_not_empty(inputs)
        inputs = _to_backbone_dtype(self.backbone, inputs)
        mask = inputs.get("attention_mask")
        self._check_padding(inputs, mask)
        if cfg.tap_source == "hidden_states":
            out = call_backbone(self.backbone, inputs, output_hidden_states=True, return_dict=True)
            encoder_decoder = getattr(out, "decoder_hidden_states", None) is not None
            if cfg.input_kind == "cross_stream" or (cfg.input_kind is None and encoder_decoder):
                hidden = list(_required(out, "encoder_hidden_states"))
                decoder = list(_required(out, "decoder_hidden_states"))
                # A joint encoder (MDETR: image cells + text tokens) masks its own sequence, not the text's.
                mask = getattr(out, "encoder_attention_mask", mask)
            else:
                hidden = list(_required(out, "encoder_hidden_states" if encoder_decoder else "hidden_states"))
                decoder = []
                if hidden[0].dim() == 4:  # CNN stages (e.g. transformers' ResNet): keep the deepest
                    hidden = hidden[-cfg.max_stages:]
        else:
            names = cfg.taps + (cfg.decoder_taps or [])
            with capture_outputs(self.backbone, names) as capture:
                out = call_backbone(self.backbone, inputs)
            missing = [n for n in names if capture.calls[n] == 0]
            if missing:
                raise RuntimeError(f"taps {missing} did not run in the backbone's forward; choose other layers")
            hidden = [capture.outputs[n] for n in cfg.taps]
            decoder = [capture.outputs[n] for n in cfg.decoder_taps or []]
        if hidden[0].dim() == 4:
            mask = None
        head_inputs = getattr(out, "head_inputs", None) if cfg.tap_source == "hidden_states" else None
        return Taps(hidden, mask, self._final(out), self._class_index(mask, hidden), decoder, head_inputs)

    def _final(self, out: object) -> torch.Tensor | None:
        if self.config.input_kind != "single_query":
            return None
        names = [self.config.final_output] if self.config.final_output else list(FINAL_OUTPUT_CANDIDATES)
        for name in names:
            value = getattr(out, name, None)
            if isinstance(value, torch.Tensor):
                return value
        if isinstance(out, torch.Tensor) and out.dim() == 2:
            return out
        raise ValueError(
            f"single_query needs the backbone's final embedding; none of {names} is in its output "
            f"({type(out).__name__}). Set UniPTConfig.final_output to the attribute that holds it."
        )

    def _class_index(self, mask: torch.Tensor | None, hidden: list[torch.Tensor]) -> torch.Tensor | None:
        if self.config.skip != "class_token" or self.config.class_token == "first":
            return None
        if mask is None:
            return torch.full((hidden[0].shape[0],), hidden[0].shape[1] - 1, device=hidden[0].device)
        return mask.long().sum(1) - 1

    def _check_padding(self, inputs: dict[str, torch.Tensor], mask: torch.Tensor | None) -> None:
        ids = inputs.get("input_ids")
        pad = getattr(getattr(self.backbone, "config", None), "pad_token_id", None)
        if ids is not None and mask is None and pad is not None and bool((ids == pad).any()):
            raise ValueError(
                "input_ids contain padding tokens but no attention_mask was given; UniPT would treat "
                "padding as real tokens. Pass attention_mask (the tokenizer returns it)."
            )
        if mask is not None and ids is not None and mask.shape != ids.shape:
            raise ValueError(f"attention_mask shape {tuple(mask.shape)} != input_ids shape {tuple(ids.shape)}")


def _check_not_empty(inputs: dict[str, torch.Tensor]) -> None:
    """A batch of zero samples is refused before the backbone runs (it would fail deep inside it)."""
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == 0:
            raise ValueError(f"got a batch of zero samples ({name} has shape {tuple(value.shape)}); pass at least "
                             "one sample (check the filter or split that produced this batch)")


def _to_backbone_dtype(backbone: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point inputs (pixels, embeddings) in the backbone's dtype, so a ``.half()`` / bf16 backbone
    accepts what the fp32 preprocessing produces; integer inputs (ids, masks) are left alone."""
    dtype = backbone_dtype(backbone)
    if dtype is None:
        return inputs
    return {k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != dtype else v
            for k, v in inputs.items()}


def backbone_dtype(backbone: nn.Module) -> torch.dtype | None:
    """The dtype of the backbone's first floating-point parameter (None for a parameter-free module)."""
    return next((p.dtype for p in backbone.parameters() if p.is_floating_point()), None)


def _required(out: object, name: str) -> tuple[torch.Tensor, ...]:
    value = getattr(out, name, None)
    if value is None:
        raise ValueError(
            f"the backbone output has no {name!r}; it does not support output_hidden_states. "
            "Name the layers to tap with UniPTConfig(taps=[...])"
        )
    return value


def cast_taps(taps: Taps, dtype: torch.dtype) -> Taps:
    """``taps`` with its floating tensors (layers, final embedding, decoder layers) in ``dtype``; masks and
    indices keep theirs. Returns ``taps`` itself when nothing needs casting."""
    def cast(x: torch.Tensor | None) -> torch.Tensor | None:
        return x.to(dtype) if x is not None and x.is_floating_point() and x.dtype != dtype else x

    tensors = [*taps.hidden, taps.final, *taps.decoder_hidden]
    if all(t is None or not t.is_floating_point() or t.dtype == dtype for t in tensors):
        return taps
    return Taps([cast(h) for h in taps.hidden], taps.mask, cast(taps.final), taps.class_index,
                [cast(d) for d in taps.decoder_hidden])


def discover_widths(tapper: BackboneTapper, example_inputs: dict[str, torch.Tensor] | None) -> Taps:
    """Run the backbone once on ``example_inputs`` (or a probe batch) to learn the tap shapes."""
    inputs = example_inputs or probe_inputs(tapper.backbone, tapper.config.probe_size)
    return tapper(inputs)


def fill_config_widths(config: UniPTConfig, taps: Taps) -> None:
    """Set ``input_kind`` and widths from real tap shapes, refusing a config made for other widths."""
    if config.input_kind is None:
        if taps.decoder_hidden:
            config.input_kind = "cross_stream"
        else:
            config.input_kind = "spatial" if taps.hidden[0].dim() == 4 else "sequence"
    spatial = taps.hidden[0].dim() == 4
    if spatial != (config.input_kind == "spatial"):
        raise ValueError(
            f"preset {config.preset!r} expects {config.input_kind} taps but the backbone gives "
            f"{'[B, C, H, W] maps' if spatial else '[B, L, D] tokens'}; choose a preset for this backbone "
            "(e.g. 'auto') or other taps"
        )
    found: dict[str, Any] = {"in_widths": [h.shape[1 if spatial else -1] for h in taps.hidden]}
    if taps.decoder_hidden:
        found["decoder_widths"] = [h.shape[-1] for h in taps.decoder_hidden]
    if config.input_kind == "single_query":
        found["final_width"] = taps.final.shape[-1]
    for key, value in found.items():
        current = getattr(config, key)
        if current is not None and (list(current) != list(value) if isinstance(value, list) else current != value):
            raise ValueError(
                f"UniPTConfig.{key}={current} does not match the backbone ({value}); drop it from the config "
                "to let get_unipt_model discover it"
            )
        setattr(config, key, value)
