"""This process's CPU resident-set peak, resettable (the kernel's ``VmHWM`` high-water mark reset through
``/proc/self/clear_refs``, else a psutil thread sampling RSS every millisecond), and a helper that hands
freed heap pages back to the OS so a later peak is not hidden. Shared by the benchmarks and LM training."""

from __future__ import annotations

import re
import threading
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{field} not in {_STATUS}")
    return int(match.group(1))


class RssPeak:
    """CPU peak RSS since :meth:`reset`: kernel high-water mark if resettable, else a sampling thread."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.backend = "cpu-vmhwm"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0

    def current(self) -> int:
        return _status_kib("VmRSS") * 1024

    def reset(self) -> None:
        try:
            _CLEAR_REFS.write_text("5")
            if _status_kib("VmHWM") <= _status_kib("VmRSS") + 4:  # the mark really went down
                return
        except OSError:
            pass
        self._start_sampler()

    def _start_sampler(self) -> None:
        import psutil

        self.backend = "cpu-sampled"
        proc = psutil.Process()
        self._sampled = proc.memory_info().rss

        def sample() -> None:
            while not self._stop.is_set():
                self._sampled = max(self._sampled, proc.memory_info().rss)
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def peak(self) -> int:
        if self._thread is None:
            return _status_kib("VmHWM") * 1024
        self._stop.set()
        self._thread.join()
        return max(self._sampled, self.current())


def release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so a later peak is not hidden.

    Without it, memory freed while building the model (probe forwards, weight loading) stays in the
    resident set and a training step can reuse it without raising RSS. A no-op where unavailable.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
