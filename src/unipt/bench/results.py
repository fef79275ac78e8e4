"""Result records of a benchmark run (plain dataclasses, JSON round-trippable)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class MethodResult:
    """Everything measured for one method on one workload. Byte fields are raw bytes.

    Attributes:
        method: row label (registry name or ``MethodSpec.label``).
        variant: the method's honest one-line description (e.g. LST's "no pruning init").
        trainable_params: trainable scalars of the method, **excluding** the shared task head.
        saved_bytes: size of what its checkpoint stores (``saved_state_dict``).
        saved_activation_bytes: tensors autograd saved during one forward (head included).
        gradient_bytes / optimizer_state_bytes: after one AdamW step (head included).
        peak_bytes: peak training memory above the loaded model (``PeakMemory.peak_delta_bytes``).
        peak_backend: how the peak was read ("cuda", "cpu-vmhwm", "cpu-sampled").
        step_ms / step_q25_ms / step_q75_ms: median and quartiles of the training-step time.
        metric_values: task metric, one value per seed (filled by the training loop).
        parameter_bytes: every parameter the training process holds (frozen backbone included).
        status: ``"ok"``, ``"OOM"`` or ``"error: ..."``; a failed method keeps its row, never dropped.
        extra: anything else worth keeping in the JSON (learning rate, training seconds per seed...).
    """

    method: str
    variant: str
    trainable_params: int
    total_params: int
    saved_bytes: int
    saved_activation_bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    peak_bytes: int | None = None
    peak_backend: str | None = None
    step_ms: float | None = None
    step_q25_ms: float | None = None
    step_q75_ms: float | None = None
    metric_values: list[float] = field(default_factory=list)
    parameter_bytes: int | None = None
    status: str = "ok"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_total_bytes(self) -> int | None:
        """Weights + peak training memory above them: comparable with an inference process's total."""
        if self.peak_bytes is None or self.parameter_bytes is None:
            return None
        return self.parameter_bytes + self.peak_bytes

    @property
    def metric_mean(self) -> float | None:
        return statistics.fmean(self.metric_values) if self.metric_values else None

    @property
    def metric_std(self) -> float | None:
        """Sample standard deviation over seeds (0 for a single seed)."""
        if not self.metric_values:
            return None
        return statistics.stdev(self.metric_values) if len(self.metric_values) > 1 else 0.0


@dataclass
class BenchmarkReport:
    """A table of :class:`MethodResult` plus the context needed to read it.

    ``reference_*`` describe the backbone's inference-only forward on the same batch: its median time,
    its peak memory above the loaded weights and the weights' size. ``targets`` holds the issue's target
    checks (:mod:`unipt.bench.targets`) as dicts once computed.
    """

    workload: str
    description: str
    device: str
    rows: list[MethodResult]
    reference_forward_ms: float | None = None
    metric_name: str | None = None
    reference_method: str = "unipt"
    notes: list[str] = field(default_factory=list)
    reference_peak_bytes: int | None = None
    reference_parameter_bytes: int | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float | None = None

    @property
    def reference_total_bytes(self) -> int | None:
        """Weights + inference peak above them (``None`` when either is unknown)."""
        if self.reference_peak_bytes is None or self.reference_parameter_bytes is None:
            return None
        return self.reference_parameter_bytes + self.reference_peak_bytes

    def row(self, method: str) -> MethodResult | None:
        return next((r for r in self.rows if r.method == method), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for row, out in zip(self.rows, data["rows"], strict=True):
            out["metric_mean"], out["metric_std"] = row.metric_mean, row.metric_std
            out["peak_total_bytes"] = row.peak_total_bytes
        data["reference_total_bytes"] = self.reference_total_bytes
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkReport:
        names = {f.name for f in fields(MethodResult)}
        rows = [MethodResult(**{k: v for k, v in r.items() if k in names}) for r in data["rows"]]
        own = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in own}, "rows": rows})


@dataclass
class ScalingPoint:
    """One method at one value of the swept variable (depth, batch size...)."""

    method: str
    x: float
    peak_bytes: int | None
    step_ms: float | None
    saved_activation_bytes: int
    trainable_params: int | None = None


@dataclass
class ScalingReport:
    """Memory and step time of several methods as one workload parameter grows.

    ``reference_ms`` maps ``str(x)`` to the inference-only forward time at that point.
    """

    x_name: str
    workload: str
    device: str
    points: list[ScalingPoint] = field(default_factory=list)
    reference_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def methods(self) -> list[str]:
        return list(dict.fromkeys(p.method for p in self.points))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScalingReport:
        return cls(**{**data, "points": [ScalingPoint(**p) for p in data["points"]]})
