"""A benchmark workload and the one training step every method is measured with.

A :class:`Workload` is a *picklable recipe* (factories, not objects) so the same step can be rebuilt
in a fresh process for peak-memory isolation. Every method gets the same backbone, batch, head
(:class:`ProbeHead`), loss and optimizer; only the adaptation method in the middle changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unipt.outputs import AdaptedOutput, masked_mean
from unipt.registry import build_method
from unipt.train.step import training_step


@dataclass(frozen=True)
class Workload:
    """Everything needed to build one training step, as picklable factories.

    Attributes:
        name: short label used in reports.
        backbone_factory: ``() -> nn.Module``; a top-level function or ``functools.partial`` of one.
        batch_factory: ``(batch_size) -> dict`` of backbone inputs plus ``"labels"`` ``[B]`` (int64).
        feature_dim: width ``D`` of the adapted output (the head's input).
        num_classes: head output size.
        batch_size: samples per step.
        description: free text for the report (backbone size, sequence length...).
    """

    name: str
    backbone_factory: Callable[[], nn.Module]
    batch_factory: Callable[[int], dict[str, torch.Tensor]]
    feature_dim: int
    num_classes: int = 2
    batch_size: int = 8
    description: str = ""


@dataclass(frozen=True)
class MethodSpec:
    """A method to benchmark: registry name, constructor options, and an optional report label."""

    method: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def key(self) -> str:
        """Row name in reports (the label, else the method name)."""
        return self.label or self.method


def as_specs(methods: Iterable[str | MethodSpec]) -> list[MethodSpec]:
    """Accept plain method names or specs; labels must be unique."""
    specs = [m if isinstance(m, MethodSpec) else MethodSpec(m) for m in methods]
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate method labels in {keys}; give MethodSpec labels")
    return specs


class ProbeHead(nn.Module):
    """The shared task head: ``Linear(D -> classes)`` on the pooled features ``[B, D]``."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(feature_dim, num_classes)

    def forward(self, out: AdaptedOutput) -> torch.Tensor:
        pooled = (
            out.pooled if out.pooled is not None else masked_mean(out.last_hidden_state, out.attention_mask)
        )
        return self.fc(pooled)


class TrainingStep:
    """One optimizer step of ``head(method(**inputs))`` with cross-entropy; the unit everything measures.

    Call it to run a step; pass a context manager (e.g. a ``SavedActivationMeter``) to wrap only the
    forward pass and loss, which is where autograd saves tensors. ``amp_dtype`` (e.g. ``torch.bfloat16``)
    runs the forward under ``torch.autocast`` on the labels' device; weights and AdamW stay fp32.
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        head: nn.Module,
        inputs: Mapping[str, torch.Tensor],
        labels: torch.Tensor,
        lr: float = 1e-3,
        amp_dtype: torch.dtype | None = None,
    ) -> None:
        self.name = name
        self.amp_dtype = amp_dtype
        self.model = model
        self.head = head
        self.inputs = dict(inputs)
        self.labels = labels
        params = [p for p in (*model.parameters(), *head.parameters()) if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=lr)

    def loss(self) -> torch.Tensor:
        """Forward + loss (scalar)."""
        return F.cross_entropy(self.head(self.model(**self.inputs)), self.labels)

    def __call__(self, forward_context: AbstractContextManager[Any] | None = None) -> float:
        def amp_loss() -> torch.Tensor:
            amp = torch.autocast(self.labels.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()
            with amp:
                return self.loss()

        return float(training_step(amp_loss, self.optimizer, forward_context=forward_context).loss)


def build_training_step(
    workload: Workload,
    method: str,
    options: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    lr: float = 1e-3,
    amp_dtype: torch.dtype | None = None,
) -> TrainingStep:
    """Build backbone -> method -> head, the batch and AdamW, all on ``device``, seeded.

    Every method gets the same backbone weights, batch and head initialisation for a given ``seed``.
    """
    torch.manual_seed(seed)
    backbone = workload.backbone_factory()
    batch = {k: v.to(device) for k, v in workload.batch_factory(workload.batch_size).items()}
    labels = batch.pop("labels")
    opts = dict(options or {})
    if method in ("lst", "unipt") and "example_inputs" not in opts:
        # Side networks size themselves from real tap shapes; one real sample is always a valid probe
        # (the whole batch would run the backbone once more, on the CPU, before the model is moved).
        opts["example_inputs"] = {k: v[:1].cpu() for k, v in batch.items()}
    model = build_method(method, backbone, **opts).to(device)
    model.train()
    # Re-seed: methods consume different amounts of randomness, the head must still start identical.
    torch.manual_seed(seed + 1)
    head = ProbeHead(workload.feature_dim, workload.num_classes).to(device)
    return TrainingStep(method, model, head, batch, labels, lr=lr, amp_dtype=amp_dtype)


# ------------------------------------------------------------------------------ example workloads
def tiny_bert(
    hidden: int = 64, layers: int = 2, heads: int = 2, vocab: int = 128, max_len: int = 128, seed: int = 0
) -> nn.Module:
    """A randomly initialised ``BertModel`` (no pooler: only the token states are used)."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.BertConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        vocab_size=vocab,
        max_position_embeddings=max_len,
    )
    return transformers.BertModel(config, add_pooling_layer=False)


def random_text_batch(
    batch_size: int, seq_len: int = 16, vocab: int = 128, num_classes: int = 2, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Token ids ``[B, L]``, a mask with the second half of the rows padded to 3/4 length, labels ``[B]``.

    Labels depend on the first token, so a model can actually learn the task in a few steps.
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch_size, seq_len), generator=g)
    mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    mask[batch_size // 2 :, (3 * seq_len) // 4 :] = 0
    ids = ids * mask  # pad id 0
    labels = ids[:, 0] % num_classes
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def tiny_bert_workload(
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    seq_len: int = 16,
    batch_size: int = 8,
    num_classes: int = 2,
) -> Workload:
    """Random BERT text classification: the default workload for tests and the quick benchmark."""
    return Workload(
        name=f"bert-d{hidden}-l{layers}",
        backbone_factory=functools.partial(
            tiny_bert, hidden=hidden, layers=layers, heads=heads, max_len=max(seq_len, 16)
        ),
        batch_factory=functools.partial(random_text_batch, seq_len=seq_len, num_classes=num_classes),
        feature_dim=hidden,
        num_classes=num_classes,
        batch_size=batch_size,
        description=f"random BERT (D={hidden}, {layers} layers, {heads} heads), seq {seq_len}, "
        f"batch {batch_size}, {num_classes}-way classification",
    )
