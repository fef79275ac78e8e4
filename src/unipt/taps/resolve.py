"""Resolve a :class:`~unipt.config.UniPTConfig` on a backbone: which modules, which widths, which input kind.

The config is what the user asks for and is never changed; what the backbone determines goes into a
separate :class:`~unipt.taps.tapper.ResolvedTaps`. So one config can be reused on backbones of other
widths or depths, and a glob such as ``encoder.layer.*`` matches every layer of each backbone anew.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unipt.config import UniPTConfig
from unipt.taps.auto import find_cnn_stages, is_hf_model, probe_inputs
from unipt.taps.hooks import resolve_module_names
from unipt.taps.tapper import BackboneTapper, ResolvedTaps, Taps


def resolve_taps(backbone: nn.Module, config: UniPTConfig,
                 example_inputs: dict[str, torch.Tensor] | None = None) -> ResolvedTaps:
    """Pick the tap source and modules, run the backbone once (on ``example_inputs`` or a probe batch)
    and read the input kind and widths off the real taps.

    Raises:
        ValueError: widths given in the config do not match the backbone, or a preset meant for
            another kind of backbone (the message names the fix).
        TapNotFoundError: a tap name matches no module (the message lists close names).
    """
    source = config.tap_source or ("modules" if config.taps or not is_hf_model(backbone) else "hidden_states")
    names = decoder_names = None
    if source == "modules":
        patterns = config.taps
        if patterns is None:
            patterns = find_cnn_stages(backbone, probe_inputs(backbone, config.probe_size), config.max_stages)
        names = resolve_module_names(backbone, patterns)
        if config.decoder_taps is not None:
            decoder_names = resolve_module_names(backbone, config.decoder_taps)
    class_token = config.class_token if config.skip == "class_token" and config.class_token != "first" else None
    plan = ResolvedTaps(source, config.input_kind, [], names, decoder_names, final_output=config.final_output,
                        max_stages=config.max_stages, class_token=class_token)
    inputs = example_inputs or probe_inputs(backbone, config.probe_size)
    taps, final_output = BackboneTapper(backbone, plan).read(inputs)
    return ResolvedTaps(**{**plan.to_dict(), **_shapes(config, taps), "final_output": final_output})


def standalone(config: UniPTConfig) -> ResolvedTaps:
    """The resolution of a config that states its own widths (``in_widths``...; see
    :meth:`UniPTConfig.for_paper`), for building a side network without a backbone."""
    if config.in_widths is None:
        raise ValueError(
            "UniPTConfig.in_widths is not set. Wrap a backbone with get_unipt_model() to discover it, "
            "or pass in_widths=... (UniPTConfig.for_paper(preset) fills the paper's widths)."
        )
    kind = config.input_kind or "sequence"
    for name, needed in (("final_width", kind == "single_query"), ("decoder_widths", kind == "cross_stream")):
        if needed and getattr(config, name) is None:
            raise ValueError(f"UniPTConfig.{name} is not set; input_kind={kind!r} needs it (or wrap a backbone "
                             "with get_unipt_model() to discover it)")
    return ResolvedTaps(config.tap_source or "hidden_states", kind, list(config.in_widths), config.taps,
                        config.decoder_taps, config.decoder_widths, config.final_width, config.final_output,
                        config.max_stages)


def _shapes(config: UniPTConfig, taps: Taps) -> dict[str, Any]:
    """``input_kind`` and widths from real tap shapes, refusing a config that states other ones."""
    spatial = taps.hidden[0].dim() == 4
    kind = config.input_kind or ("cross_stream" if taps.decoder_hidden else "spatial" if spatial else "sequence")
    if spatial != (kind == "spatial"):
        raise ValueError(
            f"preset {config.preset!r} expects {kind} taps but the backbone gives "
            f"{'[B, C, H, W] maps' if spatial else '[B, L, D] tokens'}; choose a preset for this backbone "
            "(e.g. 'auto') or other taps"
        )
    found: dict[str, Any] = {"input_kind": kind, "in_widths": [h.shape[1 if spatial else -1] for h in taps.hidden]}
    if taps.decoder_hidden:
        found["decoder_widths"] = [h.shape[-1] for h in taps.decoder_hidden]
    if kind == "single_query":
        found["final_width"] = taps.final.shape[-1]
    for key in ("in_widths", "decoder_widths", "final_width"):
        stated, value = getattr(config, key), found.get(key)
        if stated is not None and value is not None and (
                list(stated) != list(value) if isinstance(value, list) else stated != value):
            raise ValueError(
                f"UniPTConfig.{key}={stated} does not match the backbone ({value}); drop it from the config "
                "to let get_unipt_model discover it"
            )
    return found
