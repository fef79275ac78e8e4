"""A restricted unpickler for annotation pickles (``refs(unc).p``, ``raw-captions.pkl``).

Annotation pickles only need built-in containers and primitives. Any other global (a class, a function
such as ``os.system``) is refused, so opening a tampered file cannot execute code. Python 2 pickles are
read with ``encoding="bytes"`` and their byte strings decoded as UTF-8 (Latin-1 as a fallback).
"""

from __future__ import annotations

import io
import pickle
from os import PathLike
from typing import Any

from unipt.data.errors import DataFormatError, UnsafePickleError
from unipt.data.io import require_file

__all__ = ["ALLOWED_GLOBALS", "safe_load_pickle"]

# Plain data types only; protocol 2 pickles refer to some of them by name (``__builtin__`` -> ``builtins``).
ALLOWED_GLOBALS = frozenset(
    ("builtins", name)
    for name in (
        "set",
        "frozenset",
        "list",
        "dict",
        "tuple",
        "str",
        "bytes",
        "bytearray",
        "int",
        "float",
        "complex",
        "bool",
    )
)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, path: str) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # Python 2 spelling
            module = "builtins"
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            self._path,
            record=f"global {module}.{name}",
            problem="refused by the restricted unpickler",
            expected="only built-in containers and primitives (dict, list, str, int, float, ...)",
            hint="annotation pickles never need other objects; re-export the file as plain data",
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            self._path,
            record=f"persistent id {pid!r}",
            problem="refused",
            expected="plain data without persistent ids",
        )


def _decode(value: Any) -> Any:
    """Recursively turn Python 2 byte strings into str."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, dict):
        return {_decode(k): _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(_decode(v) for v in value)
    return value


def safe_load_pickle(path: str | PathLike[str], what: str = "annotation pickle") -> Any:
    """Load a pickle that may only contain built-in containers and primitives.

    Raises:
        DataFileNotFoundError: the file is missing.
        UnsafePickleError: the pickle references a non-allowed global.
        DataFormatError: the file is not a readable pickle.
    """
    p = require_file(path, what)
    with p.open("rb") as fh:
        try:
            obj = _RestrictedUnpickler(fh, str(p)).load()
        except DataFormatError:
            raise
        except Exception as exc:  # any corruption: EOFError, UnpicklingError, ValueError, ...
            raise DataFormatError(
                p,
                problem=f"unreadable pickle ({type(exc).__name__}: {exc})",
                expected="a Python pickle of plain data",
            ) from exc
    return _decode(obj)
