"""Backbone taps: read intermediate outputs of any backbone without building an autograd graph."""

from unipt.taps.auto import find_cnn_stages, is_hf_model, probe_inputs
from unipt.taps.hooks import TapNotFoundError, capture_outputs, resolve_module_names
from unipt.taps.tapper import BackboneTapper, Taps, cast_taps, discover_widths, fill_config_widths

__all__ = [
    "BackboneTapper",
    "TapNotFoundError",
    "Taps",
    "capture_outputs",
    "cast_taps",
    "discover_widths",
    "fill_config_widths",
    "find_cnn_stages",
    "is_hf_model",
    "probe_inputs",
    "resolve_module_names",
]
