"""Common shape of every baseline: a backbone wrapper whose forward returns an :class:`AdaptedOutput`.

A baseline differs from the others only in *which* parameters train and *where* gradients flow; the
task head, data and measurement stay the same. This base class gives all of them the same reporting
surface (trainable count, what a checkpoint would contain, its size), so a benchmark never needs to
know which method it is looking at.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from unipt.outputs import AdaptedOutput


class AdaptedMethod(nn.Module):
    """Base class: wraps ``backbone``; ``forward(**backbone_inputs) -> AdaptedOutput``.

    Subclasses set the class attributes ``name`` (registry key) and ``variant`` (one honest line that
    every report prints, e.g. what was simplified relative to the paper).

    Args:
        backbone: the pre-trained network; it is adapted in place (PEFT methods inject modules into it).
        backbone_train_mode: when ``False`` the backbone is kept in eval mode even while the wrapper
            trains, so its dropout is off and BatchNorm uses running statistics. Methods that do not
            train the backbone (frozen probe, LST) default to ``False``; methods that do (full, BitFit,
            LoRA, IA3) default to ``True``, the usual fine-tuning setting. UniPT's reference code
            keeps the frozen backbone in train mode (dropout on); pass ``True`` to match that.
    """

    name: str = "base"
    variant: str = "base"

    def __init__(self, backbone: nn.Module, *, backbone_train_mode: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.backbone_train_mode = backbone_train_mode
        # Start in train mode like any fresh nn.Module, but respect the backbone-mode policy at once.
        self.train(True)

    def train(self, mode: bool = True) -> AdaptedMethod:
        """Set train/eval mode; the backbone stays in eval mode unless ``backbone_train_mode``."""
        super().train(mode)
        if not self.backbone_train_mode:
            self.backbone.eval()
        return self

    # ---------------------------------------------------------------- reporting
    def named_trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Yield ``(name, parameter)`` for every parameter with ``requires_grad``."""
        for name, param in self.named_parameters():
            if param.requires_grad:
                yield name, param

    def trainable_parameters(self) -> tuple[int, int]:
        """``(trainable, total)`` scalar counts, the same contract as ``UniPTModel.trainable_parameters``.

        Shared tensors are counted once (``nn.Module.parameters`` de-duplicates them).
        """
        trainable = sum(p.numel() for _, p in self.named_trainable_parameters())
        return trainable, sum(p.numel() for p in self.parameters())

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """Exactly the tensors this method must store to reproduce the adapted model.

        Default: the trainable parameters (detached). Methods that save more (full fine-tuning saves
        buffers too) or use a library format (PEFT) override this.
        """
        return {name: p.detach() for name, p in self.named_trainable_parameters()}

    def saved_bytes(self) -> int:
        """Size in bytes of :meth:`saved_state_dict` (raw tensor data, no file-format overhead)."""
        return sum(t.numel() * t.element_size() for t in self.saved_state_dict().values())

    def describe(self) -> dict[str, object]:
        """Short machine-readable summary used by the benchmark reports."""
        trainable, total = self.trainable_parameters()
        return {
            "method": self.name,
            "variant": self.variant,
            "trainable_parameters": trainable,
            "total_parameters": total,
            "saved_bytes": self.saved_bytes(),
        }

    def print_trainable_parameters(self) -> None:
        """PEFT-style one-line summary."""
        trainable, total = self.trainable_parameters()
        share = 100.0 * trainable / max(total, 1)
        print(
            f"[{self.name}] {self.variant}: trainable params: {trainable:,} || all params: {total:,} "
            f"|| trainable%: {share:.4f}"
        )

    def forward(self, *args: object, **backbone_inputs: object) -> AdaptedOutput:  # pragma: no cover
        raise NotImplementedError
