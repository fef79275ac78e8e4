"""Run one function in a fresh process and get its (picklable) result back.

Each suite method trains in its own process so that its peak memory is its own: allocators keep freed
memory, and a method measured after another would inherit that footprint. The child's stdout and
stderr (training logs, progress bars) go to a log file, so the parent's progress bars stay readable;
a failure raises :class:`IsolatedError` carrying the end of that log.

Start method: on Linux a ``forkserver`` whose server has only *imported* the heavy libraries
(:data:`PRELOAD`; importing transformers' model code costs seconds per process) forks each child, so a
child starts in milliseconds yet owns no tensor, model or allocator state from anyone else. Elsewhere,
with ``preload=None``, or where a CUDA GPU is present, a plain ``spawn``: a forked child cannot use CUDA
once its parent initialised it, and some preloaded imports do (peft imports bitsandbytes when installed,
which queries the GPU).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PRELOAD: tuple[str, ...] = (
    "torch",
    "transformers",
    "transformers.models.bert.modeling_bert",
    "peft",
    "matplotlib.pyplot",
    "unipt.train",
    "unipt.bench.suite_run",
)


def _context(preload: Sequence[str] | None) -> Any:
    """The multiprocessing context: a preloaded forkserver where available and CUDA is not, else spawn."""
    if preload and "forkserver" in mp.get_all_start_methods() and not _cuda_present():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))  # only takes effect before the server first starts
        return ctx
    return mp.get_context("spawn")


def _cuda_present() -> bool:
    import torch

    return torch.cuda.is_available()  # asks the driver (NVML); does not initialise CUDA in this process


class IsolatedError(RuntimeError):
    """The child raised, died or timed out. ``out_of_memory`` is True for allocator OOMs and kills."""

    def __init__(self, message: str, out_of_memory: bool = False) -> None:
        super().__init__(message)
        self.out_of_memory = out_of_memory


def _redirect(log_path: str | None) -> None:
    """Point fds 1 and 2 (so C-level writes too) at ``log_path``."""
    if log_path is None:
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _child(results: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
           log_path: str | None, threads: int | None) -> None:
    _redirect(log_path)
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        results.put(("ok", fn(*args, **kwargs)))
    except BaseException as exc:  # report every failure instead of leaving the parent waiting
        traceback.print_exc()
        oom = "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"
        results.put(("error", (f"{type(exc).__name__}: {exc}", oom)))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _log_tail(log_path: str | None, chars: int = 1500) -> str:
    if log_path is None or not Path(log_path).is_file():
        return ""
    text = Path(log_path).read_text(errors="replace")
    return f"\n--- end of {log_path} ---\n{text[-chars:]}"


def run_isolated(
    fn: Callable[..., Any],
    *args: Any,
    log_path: str | Path | None = None,
    timeout_s: float = 3600.0,
    threads: int | None = None,
    preload: Sequence[str] | None = PRELOAD,
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)`` in a new process (see the module docstring); returns its result.

    ``fn`` must be a module-level function and arguments/result picklable. ``threads`` sets the child's
    ``torch.set_num_threads``. Raises :class:`IsolatedError` if the child raises, is killed (e.g. by
    the kernel's OOM killer: ``out_of_memory`` is then set) or exceeds ``timeout_s``.
    """
    ctx = _context(preload)
    results = ctx.Queue()
    log = str(log_path) if log_path is not None else None
    proc = ctx.Process(target=_child, args=(results, fn, args, kwargs, log, threads), daemon=True)
    proc.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                status, payload = results.get(timeout=0.5)
                break
            except queue.Empty:
                if not proc.is_alive():
                    code = proc.exitcode
                    raise IsolatedError(
                        f"{fn.__name__} died with exit code {code}{_log_tail(log)}", out_of_memory=code == -9
                    ) from None
                if time.monotonic() > deadline:
                    raise IsolatedError(f"{fn.__name__} exceeded {timeout_s:.0f} s{_log_tail(log)}") from None
    finally:
        proc.join(10.0)
        if proc.is_alive():
            proc.terminate()
            proc.join()
    if status != "ok":
        message, oom = payload
        raise IsolatedError(f"{fn.__name__} failed: {message}{_log_tail(log)}", out_of_memory=oom)
    return payload
