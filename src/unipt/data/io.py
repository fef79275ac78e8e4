"""Small, strict readers shared by the format loaders.

They turn the usual low-level failures (missing file, bad JSON, missing CSV column, wrong field type)
into :class:`~unipt.data.errors.DataFormatError` / :class:`~unipt.data.errors.DataFileNotFoundError`
messages that name the file, the record and the field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from unipt.data.errors import DataFileNotFoundError, DataFormatError

__all__ = [
    "get_field",
    "read_csv_rows",
    "read_json",
    "read_jsonl",
    "read_text_lines",
    "require_dir",
    "require_file",
]

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}


def require_file(path: str | PathLike[str], what: str, hint: str | None = None) -> Path:
    """Return ``path`` as a Path, or raise DataFileNotFoundError naming it and what it should be."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataFileNotFoundError(p, what, hint)
    return p


def require_dir(path: str | PathLike[str], what: str, hint: str | None = None) -> Path:
    """Return ``path`` as a Path, or raise DataFileNotFoundError if it is not a directory."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataFileNotFoundError(p, what, hint)
    return p


def read_json(path: str | PathLike[str], what: str, expected: str, hint: str | None = None) -> Any:
    """Parse a JSON file; syntax errors name the line and column."""
    p = require_file(path, what, hint)
    try:
        with p.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            p,
            record=f"line {exc.lineno} column {exc.colno}",
            problem=f"invalid JSON ({exc.msg})",
            expected=expected,
            hint=hint or "check the file is complete and valid JSON",
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataFormatError(p, problem="not UTF-8 text", expected=expected, hint=hint) from exc


def read_jsonl(path: str | PathLike[str], what: str, expected: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file."""
    p = require_file(path, what)
    with p.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    p,
                    record=f"line {lineno}",
                    problem=f"invalid JSON ({exc.msg})",
                    expected=expected,
                    hint="each line must be one complete JSON object",
                ) from exc
            if not isinstance(obj, dict):
                raise DataFormatError(
                    p,
                    record=f"line {lineno}",
                    problem=f"got {type(obj).__name__}",
                    expected=expected,
                    hint="each line must be a JSON object",
                )
            yield lineno, obj


def read_csv_rows(
    path: str | PathLike[str], what: str, required: Sequence[str], delimiter: str = ","
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` from a CSV file with a header, checking required columns first."""
    p = require_file(path, what)
    with p.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = reader.fieldnames or []
        for column in required:
            if column not in header:
                raise DataFormatError(
                    p,
                    record="header (line 1)",
                    field=column,
                    problem="column missing",
                    expected=f"a header containing {list(required)}, found {header}",
                    hint="fix the header or pass the right column name option",
                )
        for row in reader:
            yield reader.line_num, row


def read_text_lines(path: str | PathLike[str], what: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, stripped_line)`` for non-blank lines not starting with ``#``."""
    p = require_file(path, what)
    with p.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip().lstrip("\ufeff")
            if text and not text.startswith("#"):
                yield lineno, text


def get_field(
    obj: Any,
    key: str,
    path: str | PathLike[str],
    record: Any,
    kind: type | tuple[type, ...] | None = None,
    hint: str | None = None,
) -> Any:
    """Return ``obj[key]`` or raise a DataFormatError naming file, record and field.

    ``kind`` optionally checks the value's type (``bool`` is never accepted as an ``int``).
    """
    if not isinstance(obj, dict):
        raise DataFormatError(
            path,
            record=record,
            field=key,
            problem=f"record is {type(obj).__name__}, not an object",
            expected="a JSON object / dict",
            hint=hint,
        )
    if key not in obj:
        raise DataFormatError(path, record=record, field=key, problem="field missing", hint=hint)
    value = obj[key]
    if kind is not None:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        bad_bool = isinstance(value, bool) and bool not in kinds
        if bad_bool or not isinstance(value, kinds):
            names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise DataFormatError(
                path,
                record=record,
                field=key,
                problem=f"got {type(value).__name__} {value!r:.60}",
                expected=names,
                hint=hint,
            )
    return value
