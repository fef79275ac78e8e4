"""The one interface every adaptation method implements: UniPT and each baseline alike.

An :class:`AdaptedMethod` wraps a backbone and is built on it (``Method(backbone, **options)``); it
says which of its parameters train (:meth:`~AdaptedMethod.trainable_parameters`), what its checkpoint
holds (:meth:`~AdaptedMethod.saved_state_dict`, and :meth:`~AdaptedMethod.save_pretrained` /
:meth:`~AdaptedMethod.load_pretrained` for the trained state), and turns the backbone's inputs into
features for a task head (``forward(**backbone_inputs) -> AdaptedOutput``).

Methods that only *read* a frozen backbone (UniPT, the frozen probe) are :class:`FrozenTapMethod`:
their forward splits into :meth:`~FrozenTapMethod.tap` (the backbone, no autograd graph) and
:meth:`~FrozenTapMethod.adapt` (the trainable part), which is what lets an activation cache stand in
for the backbone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import save_file
from torch import nn

from unipt.files import atomic_write, atomic_write_json, read_safetensors
from unipt.outputs import AdaptedOutput
from unipt.parameters import ParameterCount, count_parameters
from unipt.taps import Taps

METHOD_CONFIG = "method.json"
METHOD_WEIGHTS = "method.safetensors"


class AdaptedMethod(nn.Module):
    """Base class of every method: wraps ``backbone``; ``forward(**backbone_inputs) -> AdaptedOutput``.

    Subclasses set the class attributes ``name`` (registry key) and ``variant`` (one honest line that
    every report prints, e.g. what was simplified relative to the paper).

    Args:
        backbone: the pre-trained network; it is adapted in place (PEFT methods inject modules into it).
        backbone_train_mode: when ``False`` the backbone is kept in eval mode even while the wrapper
            trains, so its dropout is off and BatchNorm uses running statistics. Methods that do not
            train the backbone (frozen probe, LST, UniPT) default to ``False``; methods that do (full,
            BitFit, LoRA, IA3) default to ``True``, the usual fine-tuning setting.
    """

    name: ClassVar[str] = "base"
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

    def forward(self, *args: Any, **backbone_inputs: Any) -> AdaptedOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def output_width(self) -> int | None:
        """Width ``D`` of :attr:`AdaptedOutput.last_hidden_state` when known without running the model."""
        return None

    # ---------------------------------------------------------------- parameters and reports
    def named_trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Yield ``(name, parameter)`` for every parameter with ``requires_grad``."""
        for name, param in self.named_parameters():
            if param.requires_grad:
                yield name, param

    def trainable_parameters(self) -> ParameterCount:
        """``(trainable, total)`` scalar counts (shared tensors once)."""
        return count_parameters(self)

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """Exactly the tensors this method must store to reproduce the adapted model (for reports).

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
        return {"method": self.name, "variant": self.variant, "trainable_parameters": trainable,
                "total_parameters": total, "saved_bytes": self.saved_bytes()}

    def print_trainable_parameters(self) -> None:
        """PEFT-style one-line summary."""
        trainable, total = self.trainable_parameters()
        share = 100.0 * trainable / max(total, 1)
        print(f"[{self.name}] {self.variant}: trainable params: {trainable:,} || all params: {total:,} "
              f"|| trainable%: {share:.4f}")

    # ---------------------------------------------------------------- trained state
    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """What training changes, keyed as in :meth:`state_dict`: every trainable parameter and the
        buffers of the modules that own one (e.g. BatchNorm statistics next to a trained bias)."""
        trainable = {n for n, _ in self.named_trainable_parameters()}
        owners = {n.rsplit(".", 1)[0] for n in trainable}
        return {k: v for k, v in self.state_dict().items() if k in trainable or k.rsplit(".", 1)[0] in owners}

    def save_pretrained(self, directory: str | os.PathLike[str], model_card: bool = False, **card: Any) -> None:
        """Write :meth:`trained_state_dict` (``method.safetensors``) and the method's name (``method.json``).
        (``model_card`` / ``card``: UniPT writes a model card; the baselines have none.)"""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.trained_state_dict().items()}
        atomic_write(out / METHOD_WEIGHTS, lambda path: save_file(state, str(path), metadata={"format": "pt"}))
        atomic_write_json(out / METHOD_CONFIG, {"method": self.name, "variant": self.variant}, indent=2)

    def load_pretrained(self, directory: str | os.PathLike[str], fix: str | None = None) -> None:
        """Load what :meth:`save_pretrained` wrote into this (identically built) method; ``fix`` says where a
        good copy of a damaged file comes from."""
        src = Path(directory)
        if not (src / METHOD_WEIGHTS).is_file():
            raise FileNotFoundError(f"{src / METHOD_WEIGHTS} not found: {src} holds no saved {self.name} method")
        saved = json.loads((src / METHOD_CONFIG).read_text()).get("method") if (src / METHOD_CONFIG).is_file() else None
        if saved not in (None, self.name):
            raise ValueError(f"{src} holds a {saved!r} method; this tower uses {self.name!r}")
        load_into(self, read_safetensors(src / METHOD_WEIGHTS, fix or "save it again with save_pretrained"), src)


class FrozenTapMethod(AdaptedMethod):
    """A method that only reads a frozen backbone: ``forward = adapt(tap(**inputs))``.

    Attributes:
        backbone_fingerprint: ``{"class", "structure", "weights"}`` of the backbone (see
            :mod:`unipt.fingerprint`), so saved state and caches are never applied to another backbone.
    """

    backbone_fingerprint: dict[str, str]

    def tap(self, **backbone_inputs: Any) -> Taps:  # pragma: no cover - abstract
        """Run the frozen backbone with no autograd graph and return what :meth:`adapt` reads."""
        raise NotImplementedError

    def adapt(self, taps: Taps, consume: bool = False) -> AdaptedOutput:  # pragma: no cover - abstract
        """Features from taps (from :meth:`tap`, or read back from an activation cache); ``consume``: the
        method may drop its references to ``taps.hidden`` as it goes (the caller no longer needs them)."""
        raise NotImplementedError

    def tap_identity(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """JSON data that decides what :meth:`tap` returns for given inputs (an activation cache stores it)."""
        raise NotImplementedError

    def forward(self, *args: Any, **backbone_inputs: Any) -> AdaptedOutput:
        if args:  # model(images) for plain CNNs, like the backbone itself
            if len(args) != 1 or backbone_inputs:
                raise TypeError("pass the backbone's inputs as keywords, or one positional image tensor")
            backbone_inputs = {"pixel_values": args[0]}
        return self.adapt(self.tap(**backbone_inputs), consume=True)


def load_into(module: nn.Module, weights: dict[str, torch.Tensor], source: str | os.PathLike[str]) -> None:
    """Load trained ``weights`` into ``module``; every saved key must exist with its shape (frozen weights
    may be absent)."""
    own = module.state_dict()
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise ValueError(
            f"{source} has weights this model does not: {unknown[:5]}... It was saved for another "
            "configuration (towers, methods or options differ)."
        )
    mismatched = [k for k, v in weights.items() if own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"{source} has other shapes for {mismatched[:5]}; the configuration changed")
    module.load_state_dict(weights, strict=False)
