"""Skip training steps whose loss or gradient norm is NaN / inf, count them, and stop after too many.

One non-finite input sample makes every side-network gradient non-finite, and a single AdamW step with
them turns every trainable tensor into NaN. The loop asks :class:`NonFiniteGuard` after each backward
pass whether to step the optimiser; a refused step is skipped (its gradients dropped) and reported,
``train.max_consecutive_nonfinite`` refused steps in a row stop the run with the batches' records.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from unipt.errors import NonFiniteEvaluationError, NonFiniteTrainingError
from unipt.outputs import AdaptedOutput


class NonFiniteGuard:
    """Per-run bookkeeping of non-finite steps.

    Args:
        patience: this many non-finite steps in a row raise :class:`NonFiniteTrainingError`.
        dataset: the training split, to name the records of a bad batch.
    """

    def __init__(self, patience: int, dataset: Dataset | None = None, verbose: bool = True):
        self.patience = max(1, int(patience))
        self.dataset = dataset
        self.verbose = verbose
        self.consecutive = 0
        self.skipped_in_epoch = 0
        self._recent: list[str] = []

    def start_epoch(self) -> None:
        self.skipped_in_epoch = 0

    def step_ok(self, loss: float, grad_norm: float, epoch: int, step: int,
                record_ids: Sequence[int] | None = None) -> bool:
        """True when the optimiser may step; False (after reporting) when the step must be skipped.
        ``record_ids``: the dataset indices of the batch's records (to name them).

        Raises:
            NonFiniteTrainingError: the ``patience``-th non-finite step in a row.
        """
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.consecutive = 0
            self._recent = []
            return True
        self.consecutive += 1
        self.skipped_in_epoch += 1
        where = f"epoch {epoch + 1} step {step + 1}"
        records = describe_records(self.dataset, record_ids)
        self._recent = (self._recent + [f"{where}: {records}"])[-3:]
        values = f"loss={loss:.4g}, gradient norm={grad_norm:.4g}"
        if self.consecutive >= self.patience:
            raise NonFiniteTrainingError(
                f"stopped at {where}: {self.consecutive} training steps in a row had a non-finite loss or gradient "
                f"({values}); records of the last batches: {' | '.join(self._recent)}. Check those records for "
                "NaN/inf or extreme values, lower optim.lr, or raise train.max_consecutive_nonfinite"
            )
        if self.verbose:
            print(f"warning: {where}: non-finite {values}; step skipped, weights unchanged "
                  f"({self.consecutive} in a row, the run stops at {self.patience}); records: {records}",
                  file=sys.stderr)
        return False


def step_scheduler(scheduler: Any, optimizer_stepped: bool) -> None:
    """``scheduler.step()``; after a skipped optimiser step, without PyTorch's warning about the order of
    the two calls (the skip is deliberate and already reported)."""
    if optimizer_stepped:
        scheduler.step()
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        scheduler.step()


def gradient_norm(parameters: Sequence[torch.Tensor] | Any) -> float:
    """The total 2-norm of the gradients (inf / NaN when any gradient is)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norms = torch.stack([g.detach().float().norm(2) for g in grads])
    return float(norms.norm(2))


def nonfinite_records(features: Mapping[str, AdaptedOutput | Mapping[str, AdaptedOutput]],
                      record_ids: Sequence[int]) -> list[int]:
    """Dataset indices of the batch's records whose adapted features hold NaN / inf.

    ``features``: per tower (or per tower and side network), ``pooled`` ``[B, D]`` (else
    ``last_hidden_state`` ``[B, L, D]``). A tower whose rows are not one per record (several captions per
    image, say) names every record of the batch.
    """
    bad: set[int] = set()
    outputs = [o for value in features.values() for o in (value.values() if isinstance(value, Mapping) else [value])]
    for out in outputs:
        x = out.pooled if out.pooled is not None else out.last_hidden_state
        rows = (~torch.isfinite(x.detach().reshape(len(x), -1))).any(1)
        if not bool(rows.any()):
            continue
        if len(rows) == len(record_ids):
            bad.update(record_ids[i] for i in rows.nonzero().flatten().tolist())
        else:
            bad.update(record_ids)
    return sorted(bad)


def raise_on_nonfinite_evaluation(bad_ids: Sequence[int], total_bad: int, dataset: Dataset | None,
                                  split: str) -> None:
    """Raise :class:`NonFiniteEvaluationError` when evaluation met records with NaN / inf features.

    A prediction from NaN features is silently wrong (an argmax of NaN logits is still a class) or turns a
    metric into NaN, and dropping the records would silently change the metric: the run stops instead.
    ``bad_ids``: this process's records; ``total_bad``: the count over every process.
    """
    if total_bad == 0:
        return
    raise NonFiniteEvaluationError(
        f"evaluation on the {split} split: {total_bad} record(s) give NaN/inf features, so their predictions "
        f"and the metrics would be meaningless ({describe_records(dataset, bad_ids)}). Check those records for "
        "NaN/inf or corrupt values and fix or remove them; if every record fails, the weights may have diverged"
    )


def describe_records(dataset: Dataset | None, ids: Sequence[int] | torch.Tensor | None, limit: int = 8) -> str:
    """``"#12 (a.png), #40 ('a great film')"``: how an error names records of the training split."""
    if ids is None:
        return "unknown (batch without record ids)"
    ids = [int(i) for i in ids]
    parts = [f"#{i}{_label(dataset, i)}" for i in ids[:limit]]
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(parts) + more


def _label(dataset: Dataset | None, index: int) -> str:
    while isinstance(dataset, Subset):
        index = int(dataset.indices[index])
        dataset = dataset.dataset
    records = getattr(dataset, "records", None)
    if records is None or not 0 <= index < len(records):
        return ""
    record = records[index]
    for key in ("image_path", "video_id", "question_id", "text", "caption"):
        if record.get(key) is not None:
            return f" ({str(record[key])[:60]!r})" if key in ("text", "caption") else f" ({record[key]})"
    return ""
