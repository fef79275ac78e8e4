"""Exact, device-independent memory accounting: what a training step must hold, byte for byte.

Peak-memory readings depend on allocators, caching and the machine. These counts do not: they add up
the tensors that *must* exist, so two methods can be compared on any machine, CPU included.

* :class:`SavedActivationMeter`: bytes of tensors autograd keeps for backward (the activation memory
  that UniPT and LST avoid inside the backbone).
* :func:`parameter_bytes`, :func:`gradient_bytes`, :func:`optimizer_state_bytes`: the static parts.
* :func:`saved_state_dict`: what a method's checkpoint would contain.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from types import TracebackType

import torch
from torch import nn

from unipt.method import AdaptedMethod
from unipt.parameters import count_parameters

StorageKey = tuple[str, int]

# Meters active in this thread, innermost last. saved_tensors_hooks do not chain (only the innermost
# pack hook runs), so the innermost meter reports every saved tensor to the enclosing ones as well.
_ACTIVE = threading.local()


def _storage_key(t: torch.Tensor) -> StorageKey:
    """Identity of the memory block behind ``t`` (views of one tensor share it)."""
    return (str(t.device), t.untyped_storage().data_ptr())


def _storage_bytes(t: torch.Tensor) -> int:
    """Bytes of the whole storage behind ``t``: a saved view keeps its entire base alive."""
    try:
        return t.untyped_storage().nbytes()
    except (RuntimeError, NotImplementedError):  # sparse / nested / storage-less tensors
        return t.numel() * t.element_size()


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Total bytes of ``tensors``, counting each distinct storage once."""
    seen: dict[StorageKey, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor):
            seen.setdefault(_storage_key(t), _storage_bytes(t))
    return sum(seen.values())


class SavedActivationMeter:
    """Count the bytes of tensors saved for backward while the context is active.

    Uses ``torch.autograd.graph.saved_tensors_hooks``; every op that records a tensor for its backward
    passes it through the pack hook. Tensors are de-duplicated by storage (a ReLU output re-saved by the
    next Linear counts once) and **parameters are excluded**: a saved weight is model memory, not
    activation memory. Parameters are recognised as ``nn.Parameter`` objects, views of one, or tensors
    sharing storage with the parameters of the modules passed in ``exclude``.

    Under ``torch.no_grad()`` nothing is saved, so a frozen backbone run that way contributes 0.
    Meters nest: an inner meter (e.g. around the backbone call only) and an outer one (around the
    whole forward) both see what is saved inside the inner one.

    Attributes (valid during and after the context):
        bytes: total bytes of distinct storages saved for backward.
        count: number of those storages.
        live_bytes / peak_live_bytes: of those, the bytes whose saved tensor objects are still alive
            (the graph, or anyone else, still references them) / the maximum of that.

    Example::

        with SavedActivationMeter(model) as meter:
            loss = model(x).sum()
        print(meter.bytes)
    """

    def __init__(self, *exclude: nn.Module | torch.Tensor) -> None:
        self._exclude_modules = exclude
        self._excluded: set[StorageKey] = set()
        self._live: dict[StorageKey, list[int]] = {}  # key -> [bytes, references]
        self._hooks: torch.autograd.graph.saved_tensors_hooks | None = None
        self._outer: list[SavedActivationMeter] = []
        self.bytes = 0
        self.count = 0
        self.live_bytes = 0
        self.peak_live_bytes = 0

    def __enter__(self) -> SavedActivationMeter:
        for item in self._exclude_modules:
            params = item.parameters() if isinstance(item, nn.Module) else [item]
            self._excluded.update(_storage_key(p) for p in params)
        stack = _active_stack()
        self._outer = list(stack)
        stack.append(self)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._hooks is not None
        self._hooks.__exit__(exc_type, exc, tb)
        self._hooks = None
        _active_stack().remove(self)

    def _is_parameter(self, t: torch.Tensor) -> bool:
        if isinstance(t, nn.Parameter) or isinstance(getattr(t, "_base", None), nn.Parameter):
            return True
        return _storage_key(t) in self._excluded

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        # Return the tensor itself: we only observe, the graph keeps the same object as without hooks.
        for meter in (self, *self._outer):
            meter._observe(t)
        return t

    def _observe(self, t: torch.Tensor) -> None:
        if self._is_parameter(t):
            return
        key = _storage_key(t)
        entry = self._live.get(key)
        if entry is None:
            # A new storage. Liveness tracking matters: once a storage is freed, another one can reuse
            # its address, and it must then be counted again rather than mistaken for a duplicate.
            size = _storage_bytes(t)
            entry = self._live[key] = [size, 0]
            self.bytes += size
            self.count += 1
            self.live_bytes += size
            self.peak_live_bytes = max(self.peak_live_bytes, self.live_bytes)
        entry[1] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: StorageKey) -> None:
        entry = self._live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live_bytes -= entry[0]
            del self._live[key]

    @staticmethod
    def _unpack(t: torch.Tensor) -> torch.Tensor:
        return t


def _active_stack() -> list[SavedActivationMeter]:
    if not hasattr(_ACTIVE, "stack"):
        _ACTIVE.stack = []
    return _ACTIVE.stack


def parameter_bytes(module: nn.Module, trainable_only: bool = False) -> int:
    """Bytes of ``module``'s parameters (shared tensors once), optionally only the trainable ones."""
    return tensor_bytes(p for p in module.parameters() if p.requires_grad or not trainable_only)


def gradient_bytes(module: nn.Module) -> int:
    """Bytes the ``.grad`` tensors of the trainable parameters occupy (same dtype and shape)."""
    return parameter_bytes(module, trainable_only=True)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in ``optimizer.state`` (call after at least one step: state is lazy).

    AdamW holds ``exp_avg`` and ``exp_avg_sq`` (2x the trainable bytes) plus a scalar ``step`` each.
    """
    return tensor_bytes(
        v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)
    )


def trainable_count(model: nn.Module) -> int:
    """Trainable scalars of any model (shared tensors once)."""
    return count_parameters(model).trainable


def saved_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What ``model``'s checkpoint contains: :meth:`AdaptedMethod.saved_state_dict` for a method (UniPT:
    its side network), otherwise the trainable parameters of any module."""
    if isinstance(model, AdaptedMethod):
        return dict(model.saved_state_dict())
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def saved_state_bytes(model: nn.Module) -> int:
    """Raw tensor bytes of :func:`saved_state_dict` (file-format headers excluded)."""
    return sum(t.numel() * t.element_size() for t in saved_state_dict(model).values())
