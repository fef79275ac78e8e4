"""Error types raised by the data layer.

Every parsing problem is reported with the file, the record (line number, index or key) and the
field that was expected, plus a hint on how to fix the input, so that a broken annotation file can be
repaired without reading the loader's source.
"""

from __future__ import annotations

import errno
from os import PathLike
from typing import Any

from unipt.errors import UniPTError

__all__ = [
    "DataFileNotFoundError",
    "DataFormatError",
    "DatasetFetchError",
    "UnknownDatasetError",
    "UnsafePickleError",
]


class DataFormatError(ValueError):
    """A data file exists but does not follow the expected format.

    Attributes:
        path: the offending file.
        record: where in the file (``"line 12"``, ``"images[3]"``, ``"question 4711"``...), or None.
        field: the field that is missing or invalid, or None.
        expected: a short description of what was expected.
        hint: how to fix the input.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        record: Any = None,
        field: str | None = None,
        expected: str | None = None,
        problem: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path)
        self.record = record
        self.field = field
        self.expected = expected
        self.problem = problem
        self.hint = hint
        parts = [self.path]
        if record is not None:
            parts.append(f"record {record}")
        if field is not None:
            parts.append(f"field {field!r}")
        message = ": ".join(parts) + ": " + (problem or "missing or invalid value")
        if expected:
            message += f" (expected {expected})"
        if hint:
            message += f". Hint: {hint}"
        super().__init__(message)


class UnsafePickleError(DataFormatError):
    """A pickle file references a global that the restricted unpickler does not allow."""


class DataFileNotFoundError(FileNotFoundError):
    """A required data file or folder is missing.

    The message names the path and says what the file should be (and where it usually comes from).
    """

    def __init__(self, path: str | PathLike[str], what: str, hint: str | None = None) -> None:
        self.path = str(path)
        self.what = what
        message = f"{what} not found: {self.path}"
        if hint:
            message += f". Hint: {hint}"
        self.message = message
        super().__init__(errno.ENOENT, message, self.path)

    def __str__(self) -> str:
        return self.message


class DatasetFetchError(UniPTError, RuntimeError):
    """Downloading / unpacking a packaged dataset failed (the message says how to install it by hand)."""


class UnknownDatasetError(ValueError):
    """``load_dataset`` was given a name it does not know (the message lists the known names)."""
