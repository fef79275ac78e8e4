"""Turning raw label values (ints, int-like strings, class names) into integer labels."""

from __future__ import annotations

import re
from collections.abc import Sequence
from os import PathLike
from typing import Any

from unipt.data.errors import DataFormatError

__all__ = ["encode_labels"]

_INT = re.compile(r"-?\d+")


def encode_labels(
    values: Sequence[Any],
    where: Sequence[str],
    path: str | PathLike[str],
    field: str,
    label_names: Sequence[str] | None = None,
) -> tuple[list[int], list[str] | None]:
    """Map raw label values to ints.

    * ``label_names`` given: a string is looked up in it, an int must be a valid index;
    * otherwise, if every value is an int (or an int-like string) the ints are used as they are;
    * otherwise the distinct values are sorted (as strings) and numbered: a stable vocabulary.

    Args:
        values: the raw values, one per record.
        where: record descriptions (``"line 3"``) for error messages, aligned with ``values``.
        path, field: for error messages.

    Returns:
        ``(labels, class_names)``; ``class_names`` is None when raw ints were used.
    """
    for value, loc in zip(values, where, strict=True):
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
            raise DataFormatError(
                path,
                record=loc,
                field=field,
                problem=f"got {value!r:.60}",
                expected="an integer or a non-empty class name",
            )
    if label_names is not None:
        names = list(label_names)
        index = {n: i for i, n in enumerate(names)}
        out = []
        for value, loc in zip(values, where, strict=True):
            if isinstance(value, int):
                if not 0 <= value < len(names):
                    raise DataFormatError(
                        path,
                        record=loc,
                        field=field,
                        problem=f"label {value} out of range",
                        expected=f"0..{len(names) - 1}",
                    )
                out.append(value)
            elif value in index:
                out.append(index[value])
            elif _INT.fullmatch(value) and 0 <= int(value) < len(names):
                out.append(int(value))
            else:
                raise DataFormatError(
                    path,
                    record=loc,
                    field=field,
                    problem=f"unknown label {value!r}",
                    expected=f"one of {names[:10]}{'...' if len(names) > 10 else ''}",
                    hint="pass the full label_names list used for training",
                )
        return out, names
    if all(isinstance(v, int) or _INT.fullmatch(v) for v in values):
        return [int(v) for v in values], None
    names = sorted({str(v) for v in values})
    index = {n: i for i, n in enumerate(names)}
    return [index[str(v)] for v in values], names
