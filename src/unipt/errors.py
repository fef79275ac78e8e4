"""Errors a user can fix, and how the command line reports them.

Every :class:`UniPTError` message names the problem and the fix in one line. The ``unipt`` command prints
such an error (and the other expected failures: missing files, bad values, a broken cache) as
``unipt <command>: error: <message>`` and exits with code 2, without a traceback; ``--debug`` or
``UNIPT_DEBUG=1`` shows the traceback too. Anything else is reported as an internal error (exit code 1).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TextIO

__all__ = [
    "ConfigError",
    "DamagedFileError",
    "MissingToolchainError",
    "NonFiniteEvaluationError",
    "NonFiniteTrainingError",
    "OutputDirError",
    "UniPTError",
    "UnknownBackboneError",
    "cli_error_code",
    "debug_requested",
]


class UniPTError(Exception):
    """Base class of the errors whose message says what is wrong and how to fix it."""


class ConfigError(UniPTError, ValueError):
    """A run config (YAML or ``--set``) has a value of the wrong type or out of range."""


class DamagedFileError(UniPTError, ValueError):
    """A weights / state file exists but cannot be read (empty, truncated or overwritten)."""


class OutputDirError(UniPTError, OSError):
    """The run's output folder cannot be used (it is a file, under a file, or not writable)."""


class UnknownBackboneError(UniPTError, OSError):
    """A backbone name is neither packaged, a local folder, nor a reachable hub model."""


class MissingToolchainError(UniPTError, RuntimeError):
    """An option needs a tool this machine lacks (e.g. a C++ compiler for ``torch.compile``)."""


class NonFiniteTrainingError(UniPTError, RuntimeError):
    """Training kept producing a non-finite loss or gradient norm and was stopped."""


class NonFiniteEvaluationError(UniPTError, ValueError):
    """Evaluation met NaN / inf features or losses, so its metrics would be meaningless."""


# What the command line reports in one line with exit code 2: errors about the user's input and files.
# (KeyError covers unknown method / task names; ImportError a missing optional extra.)
EXPECTED = (UniPTError, ValueError, KeyError, OSError, ImportError)


def debug_requested(flag: bool = False) -> bool:
    """``--debug`` on the command line or ``UNIPT_DEBUG`` set to anything but ``0`` / empty."""
    return flag or os.environ.get("UNIPT_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def one_line(err: BaseException) -> str:
    """The error's message (a KeyError's without the quotes ``str()`` adds)."""
    if isinstance(err, KeyError) and len(err.args) == 1 and type(err).__str__ is KeyError.__str__:
        return str(err.args[0])
    return str(err) or type(err).__name__


def cli_error_code(command: str, err: BaseException, debug: bool = False, stream: TextIO | None = None) -> int:
    """Report ``err`` raised by ``unipt <command>`` on ``stream`` (stderr) and return the exit code.

    Expected errors: one line, code 2. Anything else: one line saying it is unexpected, code 1. With
    ``debug`` the traceback is printed first in both cases.
    """
    stream = stream or sys.stderr
    if debug:
        traceback.print_exception(err, file=stream)
    if isinstance(err, KeyboardInterrupt):
        print(f"unipt {command}: interrupted (checkpoints already written are intact; rerun to resume)",
              file=stream)
        return 130
    if isinstance(err, EXPECTED):
        print(f"unipt {command}: error: {one_line(err)}", file=stream)
        return 2
    hint = "" if debug else " (rerun with --debug or UNIPT_DEBUG=1 for the traceback)"
    print(f"unipt {command}: internal error: {type(err).__name__}: {one_line(err)}{hint}", file=stream)
    return 1
