"""``metrics.jsonl``: one JSON line per finished epoch, kept in step with ``checkpoints/last``.

The loop writes the checkpoint first and the line second, so a kill between the two loses the line;
the checkpoint's history holds every epoch's record, and :func:`rebuild_metrics_log` rewrites the log
from it on resume (also dropping a half-written last line, or lines of epochs the checkpoint does not
have because they will be trained again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def metrics_line(record: dict[str, Any]) -> str:
    """The log line of one epoch's record (per-step losses stay in the checkpoint)."""
    return json.dumps({k: v for k, v in record.items() if k != "losses"}) + "\n"


def rebuild_metrics_log(path: str | os.PathLike[str], history: list[dict[str, Any]]) -> str | None:
    """Make ``path`` hold exactly one line per epoch of ``history`` (a checkpoint's records).

    Returns:
        a sentence saying what was repaired, or None when the log already matched.
    """
    path = Path(path)
    expected = "".join(metrics_line(record) for record in history)
    current = path.read_text() if path.is_file() else ""
    if current == expected:
        return None
    lines = _epochs(current)
    wanted = [int(record["epoch"]) for record in history]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(expected)
    os.replace(tmp, path)
    missing = [e for e in wanted if e not in lines]
    extra = [e for e in lines if e not in wanted]
    parts = []
    if missing:
        parts.append(f"restored the lines of epochs {missing} from the checkpoint's history")
    if extra:
        parts.append(f"dropped lines of epochs {extra} that the checkpoint does not hold (they are trained again)")
    return f"{path}: " + ("; ".join(parts) if parts else "rewrote damaged lines from the checkpoint's history")


def _epochs(text: str) -> list[int]:
    """Epoch numbers of the complete, valid lines of a log."""
    out = []
    for line in text.splitlines():
        try:
            out.append(int(json.loads(line)["epoch"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out
