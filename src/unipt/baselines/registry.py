"""Name -> constructor registry, so benchmarks and configs select methods by string.

``build_method(name, backbone, **options)`` returns an ``nn.Module`` whose ``forward(**backbone_inputs)``
gives an :class:`~unipt.outputs.AdaptedOutput`. ``"unipt"`` is routed to the lead's
``unipt.get_unipt_model`` (imported lazily, so the baselines never depend on it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from unipt.baselines.bitfit import BitFit
from unipt.baselines.frozen import FrozenProbe
from unipt.baselines.full import FullFineTuning
from unipt.baselines.ia3 import IA3
from unipt.baselines.lora import LoRA, LoRAConv
from unipt.baselines.lst import LadderSideTuning


def _build_unipt(backbone: nn.Module, *, example_inputs: Any = None, **options: Any) -> nn.Module:
    """UniPT itself: ``unipt.get_unipt_model(backbone, unipt.UniPTConfig(**options), example_inputs)``.

    A backbone that defines ``build_unipt(config, example_inputs)`` (a whole system from the paper whose
    side network sits in a released place, e.g. CLIP-ViL's frozen pooler after it) builds its own.
    """
    import unipt

    config = unipt.UniPTConfig(**options)
    builder = getattr(backbone, "build_unipt", None)
    if builder is not None:
        return builder(config, example_inputs)
    return unipt.get_unipt_model(backbone, config, example_inputs)


_METHODS: dict[str, Callable[..., nn.Module]] = {
    "frozen": FrozenProbe,
    "full": FullFineTuning,
    "bitfit": BitFit,
    "lora": LoRA,
    "lora_conv": LoRAConv,
    "ia3": IA3,
    "lst": LadderSideTuning,
    "unipt": _build_unipt,
}


def list_methods() -> list[str]:
    """Registered method names, in a stable order (cheapest to most expensive to train, UniPT last)."""
    return list(_METHODS)


def register_method(name: str, builder: Callable[..., nn.Module]) -> None:
    """Add (or replace) a method; ``builder(backbone, **options)`` must return an adapted module."""
    _METHODS[name] = builder


def build_method(name: str, backbone: nn.Module, **options: Any) -> nn.Module:
    """Wrap ``backbone`` with the method ``name``; ``options`` go to its constructor (e.g. ``r=4``)."""
    try:
        builder = _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(_METHODS)}") from None
    return builder(backbone, **options)


def method_variant(model: nn.Module) -> str:
    """The honest one-line description of a built method (its ``variant``, else its class name)."""
    return str(getattr(model, "variant", type(model).__name__))
