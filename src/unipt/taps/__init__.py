"""Backbone taps: read intermediate outputs of any backbone without building an autograd graph."""

from unipt.taps.auto import find_cnn_stages, is_hf_model, probe_inputs
from unipt.taps.hooks import TapNotFoundError, capture_outputs, resolve_module_names
from unipt.taps.resolve import resolve_taps, standalone
from unipt.taps.tapper import BackboneTapper, ResolvedTaps, Taps, backbone_dtype, cast_taps

__all__ = [
    "BackboneTapper",
    "ResolvedTaps",
    "TapNotFoundError",
    "Taps",
    "capture_outputs",
    "backbone_dtype",
    "cast_taps",
    "find_cnn_stages",
    "is_hf_model",
    "probe_inputs",
    "resolve_module_names",
    "resolve_taps",
    "standalone",
]
