"""Files that must survive crashes: atomic writes, stray temporary files, damaged weights named clearly.

* :func:`atomic_write` (and :func:`atomic_write_text` / :func:`atomic_write_json`) writes through a
  temporary file in the same folder and renames it into place (the one way unipt writes a file that
  must never be left half-written);
  the temporary name carries the writer's process id, so :func:`remove_stray_temp_files` can later
  delete what a killed writer left behind without touching a live writer's file.
* :func:`read_safetensors` / :func:`read_torch_state` turn "header too small" or "failed finding central
  directory" into :class:`~unipt.errors.DamagedFileError` naming the file and where a good copy comes from.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from unipt.errors import DamagedFileError

_TEMP = re.compile(r"^\.(?P<name>.+)\.pid(?P<pid>\d+)\.[^.]+\.tmp$")
# Temporary files of unipt <= 0.1.0 (no process id in the name): removed once they are this old.
_LEGACY_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}$")
LEGACY_AGE_S = 600.0


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``.

    A crash leaves either the old file or the new one, never half a file; a kill leaves at most one
    ``.<name>.pid<PID>.<random>.tmp`` that :func:`remove_stray_temp_files` cleans up later.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any, **dumps: Any) -> None:
    """Write ``json.dumps(data, **dumps)`` atomically."""
    atomic_write_text(path, json.dumps(data, **dumps))


def remove_stray_temp_files(folder: str | os.PathLike[str], names: tuple[str, ...]) -> list[Path]:
    """Delete temporary files of :func:`atomic_write` for ``names`` in ``folder`` whose writer is gone.

    Returns:
        the files removed.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for entry in folder.iterdir():
        match, legacy = _TEMP.match(entry.name), _LEGACY_TEMP.match(entry.name)
        if match is not None and match["name"] in names and entry.is_file():
            pid = int(match["pid"])
            if pid != os.getpid() and _process_alive(pid):
                continue  # another process is writing it right now
        elif legacy is None or legacy["name"] not in names or not entry.is_file() \
                or now - entry.stat().st_mtime < LEGACY_AGE_S:
            continue
        entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def read_safetensors(path: str | os.PathLike[str], fix: str) -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file(path)``; a file that cannot be parsed raises DamagedFileError.

    Args:
        fix: where a good copy comes from, e.g. ``"save it again with save_pretrained"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {fix}")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own SafetensorError for every parse failure
        raise DamagedFileError(f"{path} is damaged ({_size(path)}: {_first_line(err)}); {fix}") from err


def read_torch_state(path: str | os.PathLike[str], fix: str) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; an unreadable file raises DamagedFileError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {fix}")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        if isinstance(err, RuntimeError) and "weights_only" in str(err):
            raise  # not damage: a file with objects the safe loader refuses
        raise DamagedFileError(f"{path} is damaged ({_size(path)}: {_first_line(err) or 'unexpected end of file'}); "
                               f"{fix}") from err


def _size(path: Path) -> str:
    size = path.stat().st_size
    return "empty" if size == 0 else f"{size} bytes, truncated or overwritten"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__
