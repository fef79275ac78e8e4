"""Overrides as people type them, and typed checks of every config value.

``--set data.limit_train=32 train.epochs=1`` (several after one flag, as Hydra / OmegaConf users
type them) and ``--set a=1 --set b=2`` both work; each value is read as YAML. Values are then
checked against the config dataclasses' type hints (:func:`check_types`), so a bad value names its
key and the type it needs instead of failing somewhere inside training.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from typing import Any, Literal


def key_value(text: str) -> str:
    """argparse ``type`` of one ``--set`` item: it must look like ``key.sub=value``."""
    key = text.split("=", 1)[0].strip()
    if "=" not in text or not key:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not KEY=VALUE (e.g. train.epochs=3); options such as --set come after the "
            "positional arguments: unipt train CONFIG.yaml --set train.epochs=1 data.limit_train=32")
    return text


def add_set_argument(parser: argparse.ArgumentParser, dest: str = "set") -> None:
    """``--set KEY=VALUE [KEY=VALUE ...]``, repeatable; the items collect in ``args.<dest>`` (a list)."""
    parser.add_argument("--set", dest=dest, action="extend", nargs="+", type=key_value, default=[],
                        metavar="KEY=VALUE",
                        help="override run config values, e.g. --set train.epochs=1 data.limit_train=32 "
                             "(values are YAML; repeatable)")


# ------------------------------------------------------------------------------------------ type checks
@functools.cache
def _hints(klass: type) -> dict[str, Any]:
    return typing.get_type_hints(klass)


def check_types(klass: type, values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``values`` checked (and gently coerced) against the type hints of dataclass ``klass``'s fields.

    Coercions: an int where a float is expected; a number string such as ``1e-3`` (YAML 1.1 reads it as
    text) where a float is expected; a number where text is expected (a split named ``2017``); a single
    string where a list of strings is expected. Anything else of the wrong type raises ``ValueError``
    naming ``prefix + key``, the expected type and the value given. Returns a new dict.
    """
    hints = _hints(klass)
    names = {f.name for f in dataclasses.fields(klass)}
    return {key: _check(value, hints[key], prefix + key) if key in names else value for key, value in values.items()}


def _check(value: Any, hint: Any, key: str) -> Any:
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _check(value, option, key)
            except ValueError:
                continue
        raise _error(key, hint, value)
    if origin is Literal:
        if value in args:
            return value
        raise ValueError(f"run config value {key}: expected one of {list(args)}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _error(key, hint, value)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _error(key, hint, value)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise _error(key, hint, value)
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _error(key, hint, value)
    if origin is list:
        if isinstance(value, str) and args and args[0] is str:
            value = [value]
        if not isinstance(value, list | tuple):
            raise _error(key, hint, value)
        return [_check(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is tuple:
        if not isinstance(value, list | tuple) or (args and args[-1] is not Ellipsis and len(value) != len(args)):
            raise _error(key, hint, value)
        if args and args[-1] is Ellipsis:
            return tuple(_check(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        return tuple(_check(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if isinstance(value, dict):
            return value
        raise _error(key, hint, value)
    return value  # a type this checker does not know: left to the dataclass


def _error(key: str, hint: Any, value: Any) -> ValueError:
    return ValueError(f"run config value {key}: expected {describe(hint)}, got {value!r} ({type(value).__name__})")


def describe(hint: Any) -> str:
    """A type hint in words: ``int | None`` -> ``an integer or null``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        plural = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
        return f"a list of {plural.get(args[0], describe(args[0]))}" if args else "a list"
    if origin is tuple:
        return f"a list of {len(args)} numbers" if args and all(a is float for a in args) else "a list"
    if origin is dict:
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "text",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))
