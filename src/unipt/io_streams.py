"""Standard output carries a command's result and nothing else; logs, progress and chatter go to stderr.

``unipt predict ... | jq`` must work even when a library prints while it loads (the EfficientNet
package prints ``Loaded pretrained weights for efficientnet-lite0`` with a bare ``print``). So while
a command runs, :func:`results_only_stdout` points ``sys.stdout`` -- and file descriptor 1 itself
when it is the process's real standard output, which also catches C extensions -- at standard
error, and keeps the original stream for :func:`emit`, the one place a result is written.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

FORMATS = ("json", "md")

# Where emit() writes while a command runs (the process's real stdout); None outside a command.
_result_stream: TextIO | None = None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send Python-level prints to stderr for the duration (also usable as a decorator).

    Wrap calls into libraries that print progress to stdout, e.g. loading a backbone.
    """
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def results_only_stdout() -> Iterator[TextIO]:
    """Run a command with everything but its result on stderr; yields the stream results go to.

    Python-level writes to ``sys.stdout`` are redirected to ``sys.stderr``. When ``sys.stdout`` is
    the process's file descriptor 1 (a terminal or a pipe, not a test's capture buffer), descriptor 1
    is duplicated onto descriptor 2 as well, so output written below Python also stays off the pipe.
    """
    global _result_stream
    previous, original = _result_stream, sys.stdout
    original.flush()
    saved_fd = _fd_one_of(original)
    result: TextIO = original
    if saved_fd is not None:
        sys.stderr.flush()
        result = os.fdopen(saved_fd, "w", encoding=getattr(original, "encoding", None) or "utf-8", closefd=False)
        os.dup2(sys.stderr.fileno(), 1)
    _result_stream = result
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield result
    finally:
        _result_stream = previous
        with contextlib.suppress(ValueError, OSError):
            result.flush()
        if saved_fd is not None:
            sys.stderr.flush()
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def _fd_one_of(stream: TextIO) -> int | None:
    """A duplicate of descriptor 1 when ``stream`` writes to it, else None."""
    try:
        if stream.fileno() != 1 or sys.stderr.fileno() != 2:
            return None
    except (AttributeError, ValueError, io.UnsupportedOperation, OSError):
        return None
    return os.dup(1)


def emit(result: Any, fmt: str = "json", markdown: Callable[[Any], str] | None = None) -> None:
    """Write a command's ``result`` to standard output as JSON or Markdown (``markdown`` renders it;
    default :func:`to_markdown`). Strings are written as they are in either format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; use one of {list(FORMATS)}")
    if isinstance(result, str):
        text = result
    elif fmt == "json":
        text = json.dumps(result, indent=2, default=_jsonable)
    else:
        text = (markdown or to_markdown)(result)
    stream = _result_stream or sys.stdout
    stream.write(text.rstrip("\n") + "\n")
    stream.flush()


def emit_file(files: dict[str, Path | str], fmt: str) -> None:
    """Emit the report a command wrote to disk: ``files["json"]`` or ``files["markdown"]``."""
    emit(Path(files["json" if fmt == "json" else "markdown"]).read_text(), fmt)


def add_format_argument(parser: Any, default: str = "json") -> None:
    """``--format json|md`` on an argparse (sub)parser."""
    parser.add_argument("--format", choices=FORMATS, default=default,
                        help=f"how the result is printed on stdout (default {default}); logs go to stderr")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # tensors, numpy values
        return value.tolist()
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


# ------------------------------------------------------------------------------------------ Markdown
def to_markdown(value: Any, title: str | None = None, level: int = 3) -> str:
    """Generic Markdown: scalars of a mapping as a key/value table, a list of flat records or a
    mapping of flat records as one table, nested values as sections headed by their key."""
    parts = [f"{'#' * level} {title}"] if title else []
    deeper = min(level + 1, 6) if title else level  # sections nest under a title, else start at ``level``
    if isinstance(value, dict) and value and all(_is_record(v) for v in value.values()):
        columns = list(dict.fromkeys(k for v in value.values() for k in v))
        parts.append(table(["name", *columns], [[name, *(v.get(c, "") for c in columns)] for name, v in value.items()]))
    elif isinstance(value, dict):
        flat = {k: v for k, v in value.items() if _is_cell(v)}
        if flat:
            parts.append(table(["key", "value"], [[k, v] for k, v in flat.items()]))
        for key, nested in value.items():
            if not _is_cell(nested):
                parts.append(to_markdown(nested, str(key), deeper))
    elif isinstance(value, list | tuple):
        if value and all(_is_record(v) for v in value):
            columns = list(dict.fromkeys(k for v in value for k in v))
            parts.append(table(columns, [[v.get(c, "") for c in columns] for v in value]))
        elif all(_is_cell(v) for v in value):
            parts.append(_cell(value) or "(none)")
        else:
            for i, item in enumerate(value, 1):
                key = _title_key(item)
                if key is None:
                    parts.append(to_markdown(item, str(i), deeper))
                else:  # the title already shows that field
                    parts.append(to_markdown({k: v for k, v in item.items() if k != key}, str(item[key]), deeper))
    else:
        parts.append(_cell(value))
    return "\n\n".join(parts)


def table(columns: list[Any], rows: list[list[Any]]) -> str:
    """A Markdown table (cells escaped; floats with 4 significant digits)."""
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _title_key(item: Any) -> str | None:
    """The field that names a record in a list (``query``, ``input``, ...), if it has one."""
    if isinstance(item, dict):
        for key in ("query", "input", "name", "split", "folder"):
            if isinstance(item.get(key), str | int):
                return key
    return None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_cell(value: Any) -> bool:
    """Fits in one table cell: a scalar or a list of scalars."""
    return _is_scalar(value) or (isinstance(value, list | tuple) and all(_is_scalar(v) for v in value))


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_cell(v) for v in value.values())


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, float):
        text = "nan" if math.isnan(value) else f"{value:.4g}"
    elif value is None:
        text = "—"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")
