"""Checks made before a run starts, so a bad input fails in seconds instead of after an epoch.

:meth:`unipt.train.Trainer.fit` runs :func:`check_output_dir` and :func:`check_weights_finite` (before each
checkpoint); the data checks (empty splits, one-class training data, labels outside the training
vocabulary) live in :mod:`unipt.train.labels`, and every cache shard is verified when a run uses a cache
(:mod:`unipt.train.caching`). The README section "What is checked before a run starts" lists them all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from unipt.errors import NonFiniteTrainingError, OutputDirError

FIX = "choose another folder with --output-dir DIR (or --set train.output_dir=DIR)"


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Make sure the run folder ``path`` can be created and written, without creating anything.

    Raises:
        OutputDirError: ``path`` is a file, lies under a file, or its nearest existing folder is not
            writable (read-only file system or permissions).
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"train.output_dir {out} is a file, not a folder; {FIX}")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputDirError(f"train.output_dir {out} cannot be created because {existing} is a file; {FIX}")
    try:  # the only reliable writability test (os.access ignores read-only mounts and ACLs)
        fd, probe = tempfile.mkstemp(prefix=".unipt-write-test-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        where = "" if existing == out else f" (its nearest existing folder {existing} is not writable)"
        raise OutputDirError(f"train.output_dir {out} is not writable: {reason}{where}; {FIX}, "
                             "or make it writable") from err
    return out


def check_weights_finite(weights: dict[str, torch.Tensor], where: str) -> None:
    """Refuse to write a checkpoint whose weights hold NaN or inf (it would poison every resume)."""
    bad = [name for name, value in weights.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise NonFiniteTrainingError(
            f"not saving {where}: {len(bad)} trainable tensors hold NaN/inf (first: {bad[:3]}); the previous "
            "checkpoint is kept. Lower optim.lr, keep optim.grad_clip on, or check the data for bad values"
        )
