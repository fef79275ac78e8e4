"""Every adaptation method by name: ``build_method(name, backbone, **options)``.

Benchmarks and run configs select methods by string. Each builder returns an
:class:`~unipt.method.AdaptedMethod`; its options are checked before anything is built, so a typo
names the option and suggests the closest one (UniPT's through :meth:`UniPTConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from unipt.baselines import IA3, BitFit, FrozenProbe, FullFineTuning, LadderSideTuning, LoRA, LoRAConv
from unipt.config import UniPTConfig
from unipt.errors import ConfigError
from unipt.method import AdaptedMethod
from unipt.model import DEFAULT_SIDE, UniPTModel
from unipt.models.clipvil import CLIPViLBackbone, CLIPViLUniPT


def build_unipt(backbone: nn.Module, *, example_inputs: Any = None, side: str = DEFAULT_SIDE,
                **options: Any) -> UniPTModel:
    """UniPT itself: ``UniPTModel(backbone, UniPTConfig.from_dict(options), example_inputs, side=side)``.

    A backbone that is a whole system from the paper, whose side network sits in a released place, gets
    its own :class:`UniPTModel` subclass (:data:`SYSTEM_MODELS`: CLIP-ViL's, before its frozen pooler).
    """
    known = [f.name for f in dataclasses.fields(UniPTConfig)]
    for key in options:
        if key not in known:
            raise UnknownOptionError("unipt", key, known)
    config = UniPTConfig.from_dict(options)
    for kind, model in SYSTEM_MODELS.items():
        if isinstance(backbone, kind):
            if side != DEFAULT_SIDE:
                raise ValueError(f"{type(backbone).__name__} builds one side network; several tasks cannot share it")
            return model(backbone, config, example_inputs)
    return UniPTModel(backbone, config, example_inputs, side=side)


# Backbones that are whole systems of the paper, and the UniPT model each is adapted with.
SYSTEM_MODELS: dict[type[nn.Module], Callable[..., UniPTModel]] = {CLIPViLBackbone: CLIPViLUniPT}


_METHODS: dict[str, Callable[..., AdaptedMethod]] = {
    "frozen": FrozenProbe,
    "full": FullFineTuning,
    "bitfit": BitFit,
    "lora": LoRA,
    "lora_conv": LoRAConv,
    "ia3": IA3,
    "lst": LadderSideTuning,
    "unipt": build_unipt,
}


def list_methods() -> list[str]:
    """Registered method names, in a stable order (cheapest to most expensive to train, UniPT last)."""
    return list(_METHODS)


def register_method(name: str, builder: Callable[..., AdaptedMethod]) -> None:
    """Add (or replace) a method; ``builder(backbone, **options)`` must return an :class:`AdaptedMethod`."""
    _METHODS[name] = builder


def build_method(name: str, backbone: nn.Module, **options: Any) -> AdaptedMethod:
    """Wrap ``backbone`` with the method ``name``; ``options`` go to its constructor (e.g. ``r=4``).

    Raises:
        KeyError: unknown method (the message lists the known ones).
        UnknownOptionError: an option the method does not take (the message suggests the closest).
    """
    try:
        builder = _METHODS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _METHODS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown method {name!r}; known: {', '.join(_METHODS)}{hint}") from None
    if builder is not build_unipt:  # UniPT checks its options against UniPTConfig's fields
        check_options(name, builder, options)
    method = builder(backbone, **options)
    if not isinstance(method, AdaptedMethod):
        raise TypeError(f"method {name!r} built a {type(method).__name__}, not an unipt.method.AdaptedMethod")
    return method


def check_options(name: str, builder: Callable[..., Any], options: dict[str, Any]) -> None:
    """Refuse options that ``builder`` does not accept, naming the closest accepted one."""
    accepted = accepted_options(builder)
    if accepted is None:
        return
    for key in options:
        if key not in accepted:
            raise UnknownOptionError(name, key, accepted)


class UnknownOptionError(ConfigError):
    """An option a method does not take; the message suggests the closest ones."""

    def __init__(self, method: str, key: str, known: list[str]):
        self.method, self.key = method, key
        close = difflib.get_close_matches(key, known, n=3)
        self.hint = f"did you mean {close}?" if close else f"known options: {sorted(known)}"
        super().__init__(f"method {method!r} has no option {key!r}; {self.hint}")


def accepted_options(builder: Callable[..., Any]) -> list[str] | None:
    """Keyword options of ``builder`` (following ``**options`` up a class's bases); ``None`` if unbounded."""
    targets = [klass.__init__ for klass in builder.__mro__] if inspect.isclass(builder) else [builder]
    names: list[str] = []
    for target in targets:
        if target is object.__init__:
            break
        params = list(inspect.signature(target).parameters.values())[1:]  # the backbone (or self)
        keywords = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names += [p.name for p in params if p.kind in keywords and p.name != "backbone"]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return sorted(set(names))
    return None
