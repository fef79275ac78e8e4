"""``unipt plan CONFIG.yaml``: predict the peak training memory of UniPT and the baselines before training.

How the prediction is made (for each method, the config's towers all switched to it):

1. **Static parts, exact, from the structure.** Weights = every parameter and buffer of the built system
   (frozen backbone, side network or adapters, task head); gradients = the trainable parameters' bytes;
   AdamW state = two moments per trainable parameter plus a scalar step each.
2. **Activations, from two tiny probe steps.** The real training step (the run config's system, loss,
   AdamW) runs at two small batch sizes ``b1 < b2`` on the worst-case batch (every text padded to the
   tower's ``max_length``). During the second step at each size, :class:`SavedActivationMeter`
   counts the bytes saved for backward and :func:`~unipt.bench.allocations.record_allocations` records
   every allocation (the profiler's memory events, kernels' internal buffers included) as the highest
   bytes allocated inside each operation. The two runs execute the same operations in the same order,
   so their timelines align operation by operation, and each point is extrapolated linearly to the
   run's batch size ``B``: ``m_B(t) = m_b1(t) + (m_b2(t) - m_b1(t)) (B - b1) / (b2 - b1)``. Its maximum is
   the forward/backward peak (saved activations, plus what else is allocated at that moment:
   temporaries and the gradients made so far). This is exact for everything linear in the batch and
   needs no per-architecture formula; where the operations differ (data-dependent code, e.g. a loop over
   lengths) ``difflib`` aligns the rest and each differing stretch extrapolates its own maximum.
3. **The optimiser step**: gradients plus the update's temporaries, measured in the probe (PyTorch's
   per-parameter AdamW loop on CPU; its ``foreach`` variant, the CUDA default, for the CUDA column).

Peak training memory above the loaded model = AdamW state + max(forward/backward peak, optimiser-step
peak). The CUDA column predicts ``torch.cuda.max_memory_allocated``: weights + batch + that peak, every
tensor rounded up to the caching allocator's 512-byte blocks. It assumes the GPU kernels save what the
CPU kernels save (true of linear layers, norms, activations and SDPA's saved outputs); not included:
the CUDA context (~0.3-0.5 GiB in ``nvidia-smi``, outside the allocator) and kernel workspaces
(cuBLAS / cuDNN). The CPU column is what a process's resident set grows by above the loaded model;
malloc's kept blocks and the autograd graph's own objects are not predicted. Verify with ``--measure``
(one fresh process per method, like ``unipt bench``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate.utils import set_seed

from unipt.batch import Batch
from unipt.bench.accounting import SavedActivationMeter, optimizer_state_bytes, tensor_bytes
from unipt.bench.allocations import cuda_rounded, record_allocations
from unipt.bench.isolate import run_isolated
from unipt.bench.memory import peak_of
from unipt.bench.system_step import SystemStep, first_records
from unipt.preprocess import TextPreprocessor
from unipt.train.batching import Collator
from unipt.train.config import RunConfig
from unipt.train.data import load_run_data
from unipt.train.optim import build_optimizer
from unipt.train.system import build_system

BASELINES = ("unipt", "frozen", "full", "lora", "lst")
CONFIGURED = "as configured"


@dataclass
class Probe:
    """One probe step at ``batch``: saved bytes, the live-bytes timeline and the optimiser-step peaks."""

    batch: int
    saved_bytes: int
    timeline: list[tuple[str, int, int]]
    optimizer_peak: int  # live tensors during the step (gradients included), per-parameter loop
    optimizer_peak_foreach_rounded: int  # the same, foreach update (CUDA default), 512-byte blocks


@dataclass
class MethodPlan:
    """The predicted memory of one method on the run config (bytes). See the module docstring."""

    method: str
    variant: str
    batch_size: int
    trainable_params: int = 0
    weights_bytes: int = 0
    gradient_bytes: int = 0
    optimizer_bytes: int = 0
    input_bytes: int = 0
    saved_activation_bytes: int = 0
    activation_peak_bytes: int = 0  # forward/backward peak of live tensors (saved activations included)
    optimizer_peak_bytes: int = 0  # optimiser step peak (gradients included), CPU loop
    cpu_peak_bytes: int = 0  # training memory above the loaded model on CPU
    cuda_peak_bytes: int = 0  # predicted torch.cuda.max_memory_allocated (weights + batch included)
    peak_phase: str = ""
    measured_cpu_peak_bytes: int | None = None
    notes: list[str] = field(default_factory=list)
    status: str = "ok"

    @property
    def transient_bytes(self) -> int:
        """What else is alive at the peak besides saved activations (or gradients, at the optimiser step)."""
        if self.peak_phase == "optimizer step":
            return max(0, self.optimizer_peak_bytes - self.gradient_bytes)
        return max(0, self.activation_peak_bytes - self.saved_activation_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "transient_bytes": self.transient_bytes}


# ------------------------------------------------------------------------------ configs and batches
def config_for_method(config_data: dict[str, Any], method: str) -> dict[str, Any]:
    """The run config with every tower switched to ``method`` (its own options kept where it already was)."""
    data = copy.deepcopy(config_data)
    if method == CONFIGURED:
        return data
    towers = {}
    for name, tower in data["towers"].items():
        tower = {"backbone": tower} if isinstance(tower, str) else dict(tower)
        if tower.get("method", "unipt") != method:
            tower["method"], tower["options"] = method, {}
            if method == "lst" and tower.get("image_size"):
                tower["options"]["probe_size"] = tower["image_size"]
        towers[name] = tower
    data["towers"] = towers
    return data


def own_method(config_data: dict[str, Any]) -> str:
    """The config's method when every tower uses the same one, else ``"as configured"``."""
    methods = {(t.get("method", "unipt") if isinstance(t, dict) else "unipt") for t in config_data["towers"].values()}
    return methods.pop() if len(methods) == 1 else CONFIGURED


def worst_case_towers(tower_info: dict[str, tuple[str, Any]]) -> dict[str, tuple[str, Any]]:
    """The towers' readers with text padded to ``max_length`` (the longest batch a run can meet)."""
    out = {}
    for name, (record_field, backbone) in tower_info.items():
        prep = backbone.preprocess
        if isinstance(prep, TextPreprocessor):
            prep = FullLengthText(prep.tokenizer, prep.max_length)
        out[name] = (record_field, dataclasses.replace(backbone, preprocess=prep))
    return out


@dataclass
class FullLengthText:
    """Like :class:`~unipt.preprocess.TextPreprocessor`, but every text is padded to ``max_length``."""

    tokenizer: Any
    max_length: int = 64

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


class PlanSession:
    """A run config's data, loaded once: builds each method's training step and batches of any size."""

    def __init__(self, config_data: dict[str, Any]) -> None:
        self.config_data = copy.deepcopy(config_data)
        self.config = RunConfig.from_dict(copy.deepcopy(config_data))
        self.data = load_run_data(self.config)
        self.batch_size = self.config.train.batch_size

    def records(self, count: int) -> list[dict[str, Any]]:
        return first_records(self.data.train, count)

    def build(self, method: str, device: str = "cpu") -> Any:
        """The method's :class:`~unipt.bench.system_step.SystemStep` (batch unset: see :meth:`batch`)."""
        config = RunConfig.from_dict(config_for_method(self.config_data, method))
        set_seed(config.train.seed)
        system = build_system(config, task_options=dict(self.data.task_options)).to(device)
        system.train()
        return SystemStep(method, system, {}, build_optimizer(system, config.optim))

    def batch(self, step: Any, size: int, device: str = "cpu") -> Batch:
        """The first ``size`` training records, collated as a run would, text padded to ``max_length``."""
        collate = Collator(worst_case_towers(step.model.tower_info), self.data.answer_index)
        return collate(self.records(size)).to(device)


# ------------------------------------------------------------------------------ probing and predicting
def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, Batch):
        return [t for tower in value.towers.values() for t in _tensors(tower.inputs)] + _tensors(value.targets)
    return []


def _rounded(tensors: Sequence[torch.Tensor]) -> int:
    sizes = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(cuda_rounded(n) for n in sizes.values())


def probe_step(step: Any, batch: Batch) -> Probe:
    """Run one warm-up step then one recorded step of ``step`` on ``batch`` (see the module docstring)."""
    step.batch = batch
    step()  # AdamW's state and every lazy initialisation exist before the recorded step
    step.optimizer.zero_grad(set_to_none=True)
    meter = SavedActivationMeter(step.model)
    with record_allocations() as forward_backward:
        with meter:
            loss = step.loss()
        loss.backward()
        del loss
    with record_allocations() as update:
        step.optimizer.step()
    groups = step.optimizer.param_groups
    saved_foreach = [g.get("foreach") for g in groups]
    for g in groups:
        g["foreach"] = True
    with record_allocations() as foreach_update:
        step.optimizer.step()  # the same gradients again, with the update CUDA uses by default
    for g, value in zip(groups, saved_foreach, strict=True):
        g["foreach"] = value
    batch_size = next(t.shape[0] for t in _tensors(batch))
    return Probe(batch_size, meter.bytes, forward_backward.entries,
                 forward_backward.final_bytes + update.peak_bytes,
                 forward_backward.final_rounded + foreach_update.peak_rounded)


def _extrapolate(p1: Probe, p2: Probe, batch: int) -> tuple[int, int, float]:
    """Forward/backward peak at ``batch`` (exact, 512-byte rounded) and the share of operations aligned.

    Equal operations of the two timelines (``difflib`` matching on the operation sequence) are
    extrapolated point by point; a stretch that differs (data-dependent code, e.g. a loop over lengths)
    contributes the extrapolation of its two maxima (or of the last matched point when one side is empty).
    """
    from difflib import SequenceMatcher

    k = (batch - p1.batch) / (p2.batch - p1.batch) if p2.batch != p1.batch else 0.0
    t1, t2 = p1.timeline, p2.timeline
    ops1, ops2 = [op for op, _, _ in t1], [op for op, _, _ in t2]
    blocks = ([("equal", 0, len(t1), 0, len(t2))] if ops1 == ops2 else
              SequenceMatcher(None, ops1, ops2, autojunk=False).get_opcodes())
    best, matched = [0.0, 0.0], 0
    last1, last2 = (None, 0, 0), (None, 0, 0)
    for tag, i1, i2, j1, j2 in blocks:
        if tag == "equal":
            matched += i2 - i1
            for a, b in zip(t1[i1:i2], t2[j1:j2], strict=True):
                for col in (0, 1):
                    best[col] = max(best[col], a[col + 1] + (b[col + 1] - a[col + 1]) * k)
            last1, last2 = t1[i2 - 1], t2[j2 - 1]
            continue
        for col in (0, 1):
            a = max((v[col + 1] for v in t1[i1:i2]), default=last1[col + 1])
            b = max((v[col + 1] for v in t2[j1:j2]), default=last2[col + 1])
            best[col] = max(best[col], a + (b - a) * k)
    return int(best[0]), int(best[1]), matched / max(len(t1), len(t2), 1)


def plan_method(session: PlanSession, method: str, probe_batches: tuple[int, int] = (2, 4)) -> MethodPlan:
    """Predict ``method``'s peak training memory on the session's run config (CPU and CUDA)."""
    batch_size = session.batch_size
    step = session.build(method)
    system = step.model
    variant = "; ".join(f"{name}: {getattr(m, 'variant', type(m).__name__)}" for name, m in system.towers.items())
    plan = MethodPlan(method, variant, batch_size)
    trainable = [p for p in system.parameters() if p.requires_grad]
    weights = [*system.parameters(), *system.buffers()]
    plan.trainable_params = sum(p.numel() for p in trainable)
    plan.weights_bytes = tensor_bytes(weights)
    plan.gradient_bytes = tensor_bytes(trainable)
    full_batch = session.batch(step, batch_size)
    plan.input_bytes = tensor_bytes(_tensors(full_batch))
    b1, b2 = (batch_size, batch_size) if batch_size <= max(probe_batches) else probe_batches
    first = probe_step(step, session.batch(step, b1))
    second = first if b2 == b1 else probe_step(step, session.batch(step, b2))
    plan.optimizer_bytes = optimizer_state_bytes(step.optimizer)
    k = (batch_size - b1) / (b2 - b1) if b2 != b1 else 0.0
    plan.saved_activation_bytes = int(first.saved_bytes + (second.saved_bytes - first.saved_bytes) * k)
    activation, activation_rounded, aligned = _extrapolate(first, second, batch_size)
    if aligned < 1.0:
        plan.notes.append(f"the probe steps' operations differ between batch sizes (data-dependent code); "
                          f"{100 * aligned:.1f} % of them aligned, the rest extrapolated by stretch")
    plan.activation_peak_bytes = activation
    plan.optimizer_peak_bytes = second.optimizer_peak
    plan.cpu_peak_bytes = plan.optimizer_bytes + max(activation, second.optimizer_peak)
    plan.peak_phase = "forward/backward" if activation >= second.optimizer_peak else "optimizer step"
    optimizer_rounded = _rounded([v for s in step.optimizer.state.values() for v in s.values()
                                  if isinstance(v, torch.Tensor)])
    plan.cuda_peak_bytes = (_rounded(weights) + _rounded(_tensors(full_batch)) + optimizer_rounded
                            + max(activation_rounded, second.optimizer_peak_foreach_rounded))
    return plan


def plan_config(config_data: dict[str, Any], methods: Sequence[str] | None = None,
                probe_batches: tuple[int, int] = (2, 4), progress: bool = True) -> list[MethodPlan]:
    """:func:`plan_method` for the config's own method and the baselines; a method that fails keeps its row."""
    from tqdm.auto import tqdm

    session = PlanSession(config_data)
    own = own_method(config_data)
    names = list(dict.fromkeys([own, *(BASELINES if methods is None else methods)]))
    plans = []
    for method in tqdm(names, desc="planning", disable=not progress, leave=False):
        try:
            plans.append(plan_method(session, method, probe_batches))
        except Exception as exc:  # e.g. a method that cannot adapt this backbone: say so, keep going
            plans.append(MethodPlan(method, "", session.batch_size, status=f"error: {type(exc).__name__}: {exc}"))
    return plans


# ------------------------------------------------------------------------------ measuring (to verify)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def return_freed_memory(threshold: int = 128 * 1024) -> bool:
    """glibc: serve blocks >= ``threshold`` bytes by ``mmap`` and give them back on free; False elsewhere.

    By default glibc raises its mmap threshold as large blocks are freed, then keeps freed tensors in its
    heap: a process's resident set then runs 1.5-2x above its live tensors (measured on MiniLM steps)
    and says more about fragmentation than about the method. With a fixed threshold the resident set
    follows the live tensors (same as ``MALLOC_MMAP_THRESHOLD_=131072`` in the environment).
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def measure_in_this_process(config_data: dict[str, Any], method: str, steps: int = 3) -> int:
    """Peak resident memory of ``steps`` training steps above the loaded model, on the planner's batch.

    Only meaningful in a fresh process (see :mod:`unipt.bench.memory`); :func:`measure_method` runs it so,
    with :func:`return_freed_memory` set first.
    """
    return_freed_memory()
    session = PlanSession(config_data)
    step = session.build(method)
    step.batch = session.batch(step, session.batch_size)
    del session
    return peak_of(step, method, steps=steps).peak_delta_bytes


def measure_method(config_data: dict[str, Any], method: str, steps: int = 3, threads: int | None = None) -> int:
    """:func:`measure_in_this_process` in a fresh process (a preloaded forkserver, like the benchmarks)."""
    return int(run_isolated(measure_in_this_process, config_data, method, steps=steps, threads=threads,
                            timeout_s=1800.0))
