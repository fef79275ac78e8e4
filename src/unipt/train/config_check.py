"""Type-check run config values when the config is loaded, so ``train.epochs=abc`` fails at once with
the key and the expected type, instead of as a ``TypeError`` deep inside the scheduler.

Values are checked against the dataclass annotations of :mod:`unipt.train.config`. Two lenient
conversions match how YAML reads numbers: ``1e-3`` (no dot, a string in YAML 1.1) becomes a float, and a
whole number written as a float (``3.0``) is accepted where an integer is expected.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from unipt.errors import ConfigError

# Smallest allowed value of numeric fields (a value below it is refused with the key and the bound).
MINIMUM: dict[str, float] = {
    "train.epochs": 0, "train.batch_size": 1, "train.eval_batch_size": 1, "train.max_steps_per_epoch": 1,
    "train.num_workers": 0, "train.eval_every": 1, "train.max_consecutive_nonfinite": 1,
    "optim.lr": 0, "optim.head_lr": 0, "optim.weight_decay": 0, "optim.eps": 0, "optim.warmup_ratio": 0,
    "optim.grad_clip": 0, "data.limit_train": 1, "data.limit_eval": 1, "towers.*.max_length": 1,
    "towers.*.image_size": 1,
}


class _Mismatch(Exception):
    """The value does not fit the annotation (internal; turned into a ConfigError with the key)."""


def check_section(klass: type, values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy of ``values`` (one config section) with every value checked against ``klass``'s annotations.

    Raises:
        ConfigError: a value has the wrong type or is below its minimum; the message names the key
            (``prefix + name``), the expected type and an example override.
    """
    hints = typing.get_type_hints(klass)
    defaults = {f.name: f.default for f in dataclasses.fields(klass)}
    out = dict(values)
    for key, value in values.items():
        if key not in hints:
            continue  # unknown keys are reported (with suggestions) by the caller
        name = prefix + key
        try:
            out[key] = _coerce(value, hints[key])
        except _Mismatch:
            example = defaults.get(key, dataclasses.MISSING)
            known = example is not None and example is not dataclasses.MISSING
            hint = f"; e.g. --set {name}={_yaml(example)}" if known else ""
            raise ConfigError(f"run config key {name} must be {describe(hints[key])}, got {value!r:.60} "
                              f"({type(value).__name__}){hint}") from None
        _check_minimum(name, out[key])
    return out


def require_mapping(value: Any, name: str, example: str) -> dict[str, Any]:
    """``value`` as a dict, or a ConfigError saying section ``name`` must be a mapping."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"run config section {name} must be a mapping (key: value), got {value!r:.60}; "
                          f"e.g. {example}")
    return dict(value)


def describe(hint: Any) -> str:
    """``int | None`` -> "an integer or null"; ``Literal["a", "b"]`` -> "one of 'a', 'b'"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "any value"
    if origin in (typing.Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin is tuple:
        return f"a list of {len(args)} {_plural(args[0])}" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _plural(hint: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings"}.get(hint, describe(hint))


def _coerce(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in args:
            return value
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        if origin is tuple and args and len(value) != len(args):
            raise _Mismatch
        items = [_coerce(v, args[i] if origin is tuple else args[0]) for i, v in enumerate(value)] if args \
            else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return dict(value)
    return _scalar(value, hint)


def _scalar(value: Any, hint: Any) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if isinstance(value, bool):  # YAML's true/false is never a number or a name
        raise _Mismatch
    if hint is int:
        if isinstance(value, int):
            return value
        number = _number(value)
        if number is not None and number.is_integer():
            return int(number)
        raise _Mismatch
    if hint is float:
        number = _number(value)
        if number is None:
            raise _Mismatch
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float):  # e.g. a split named 2017
            return str(value)
        raise _Mismatch
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _check_minimum(name: str, value: Any) -> None:
    key = name if name in MINIMUM else ".".join(["towers", "*", name.rsplit(".", 1)[-1]]) \
        if name.startswith("towers.") else name
    bound = MINIMUM.get(key)
    if bound is None or value is None or not isinstance(value, int | float) or isinstance(value, bool):
        return
    if value < bound:
        raise ConfigError(f"run config key {name} must be at least {_yaml(bound)}, got {value!r}")


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)
