"""BackboneTapper: run a frozen backbone with no autograd graph and return what UniPT reads."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from unipt.taps.auto import call_backbone
from unipt.taps.hooks import capture_outputs

FINAL_OUTPUT_CANDIDATES = ("image_embeds", "text_embeds", "pooler_output")


@dataclass(frozen=True)
class ResolvedTaps:
    """What a backbone determines about a UniPT config's taps (never part of the config itself).

    Made by :func:`unipt.taps.resolve.resolve_taps` from a :class:`~unipt.config.UniPTConfig` and a
    backbone, saved beside the config in ``unipt_config.json``; as plain data it is also the identity of
    an activation cache (two towers with equal ``ResolvedTaps`` on one backbone read the same taps).

    Attributes:
        tap_source: ``hidden_states`` (Hugging Face ``output_hidden_states``) or ``modules`` (hooks).
        input_kind: ``sequence``, ``spatial``, ``single_query`` or ``cross_stream``.
        in_widths: widths of the taps, guide last (channels of CNN maps).
        taps / decoder_taps: module names read by hooks (``modules``), patterns already expanded.
        decoder_widths: widths of the decoder taps (``cross_stream``).
        final_width / final_output: width and output attribute of the frozen final embedding (``single_query``).
        max_stages: how many CNN stages of Hugging Face hidden states are kept (deepest last).
        class_token: ``last_valid`` when the taps carry each sample's class-token position, else ``None``.
    """

    tap_source: str
    input_kind: str | None
    in_widths: list[int] = field(default_factory=list)
    taps: list[str] | None = None
    decoder_taps: list[str] | None = None
    decoder_widths: list[int] | None = None
    final_width: int | None = None
    final_output: str | None = None
    max_stages: int = 4
    class_token: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResolvedTaps:
        return cls(**data)


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

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Taps:
        """Every tensor moved to ``device`` (Accelerate's data loader calls this on cached batches)."""
        def move(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return x.to(device, non_blocking=non_blocking)
            if isinstance(x, list):
                return [move(v) for v in x]
            if isinstance(x, dict):
                return {k: move(v) for k, v in x.items()}
            return x

        return Taps(**{f.name: move(getattr(self, f.name)) for f in fields(self)})


class BackboneTapper:
    """Reads the taps that ``resolved`` describes from ``backbone``.

    The backbone always runs under ``torch.no_grad()``: nothing it computes is recorded for backward.
    """

    def __init__(self, backbone: nn.Module, resolved: ResolvedTaps):
        self.backbone, self.resolved = backbone, resolved

    @torch.no_grad()
    def __call__(self, inputs: dict[str, torch.Tensor]) -> Taps:
        taps, _ = self.read(inputs)
        return taps

    @torch.no_grad()
    def read(self, inputs: dict[str, torch.Tensor]) -> tuple[Taps, str | None]:
        """The taps, and the output attribute that held the frozen final embedding (``single_query``)."""
        plan = self.resolved
        _check_not_empty(inputs)
        inputs = _to_backbone_dtype(self.backbone, inputs)
        mask = inputs.get("attention_mask")
        self._check_padding(inputs, mask)
        if plan.tap_source == "hidden_states":
            out = call_backbone(self.backbone, inputs, output_hidden_states=True, return_dict=True)
            encoder_decoder = getattr(out, "decoder_hidden_states", None) is not None
            if plan.input_kind == "cross_stream" or (plan.input_kind is None and encoder_decoder):
                hidden = list(_required(out, "encoder_hidden_states"))
                decoder = list(_required(out, "decoder_hidden_states"))
                # A joint encoder (MDETR: image cells + text tokens) masks its own sequence, not the text's.
                mask = getattr(out, "encoder_attention_mask", mask)
            else:
                hidden = list(_required(out, "encoder_hidden_states" if encoder_decoder else "hidden_states"))
                decoder = []
                if hidden[0].dim() == 4:  # CNN stages (e.g. transformers' ResNet): keep the deepest
                    hidden = hidden[-plan.max_stages:]
        else:
            names = list(plan.taps or []) + list(plan.decoder_taps or [])
            with capture_outputs(self.backbone, names) as capture:
                out = call_backbone(self.backbone, inputs)
            missing = [n for n in names if capture.calls[n] == 0]
            if missing:
                raise RuntimeError(f"taps {missing} did not run in the backbone's forward; choose other layers")
            hidden = [capture.outputs[n] for n in plan.taps or []]
            decoder = [capture.outputs[n] for n in plan.decoder_taps or []]
        if hidden[0].dim() == 4:
            mask = None
        head_inputs = getattr(out, "head_inputs", None) if plan.tap_source == "hidden_states" else None
        name, final = self._final(out)
        return Taps(hidden, mask, final, self._class_index(mask, hidden), decoder, head_inputs), name

    def _final(self, out: object) -> tuple[str | None, torch.Tensor | None]:
        if self.resolved.input_kind != "single_query":
            return None, None
        names = [self.resolved.final_output] if self.resolved.final_output else list(FINAL_OUTPUT_CANDIDATES)
        for name in names:
            value = getattr(out, name, None)
            if isinstance(value, torch.Tensor):
                return name, value
        if isinstance(out, torch.Tensor) and out.dim() == 2:
            return None, out
        raise ValueError(
            f"single_query needs the backbone's final embedding; none of {names} is in its output "
            f"({type(out).__name__}). Set UniPTConfig.final_output to the attribute that holds it."
        )

    def _class_index(self, mask: torch.Tensor | None, hidden: list[torch.Tensor]) -> torch.Tensor | None:
        if self.resolved.class_token != "last_valid":
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
                [cast(d) for d in taps.decoder_hidden], taps.head_inputs)
