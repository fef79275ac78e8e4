"""Linear probe: the backbone is frozen and run without autograd; only the task head trains."""

from __future__ import annotations

from typing import Any

from torch import nn

from unipt.config import UniPTConfig
from unipt.fingerprint import fingerprint
from unipt.method import FrozenTapMethod
from unipt.outputs import AdaptedOutput, token_output
from unipt.taps import BackboneTapper, Taps, resolve_taps


class FrozenProbe(FrozenTapMethod):
    """Frozen backbone under ``torch.no_grad()``; returns its final features as tokens.

    The probe taps the backbone exactly as UniPT's automatic selection does and keeps only the last tap,
    UniPT's guide (the last hidden state of a Transformer, the last stage of a CNN). So "frozen vs
    UniPT" compares the same frozen signal with and without the side network, and one activation cache
    serves both. The wrapper has 0 trainable parameters.
    Output: ``last_hidden_state`` ``[B, L, D]`` (``[B, H*W, C]`` for a CNN feature map).
    """

    name = "frozen"
    variant = "linear probe (frozen backbone, head only)"

    def __init__(self, backbone: nn.Module, *, backbone_train_mode: bool = False, probe_size: int = 224) -> None:
        backbone.requires_grad_(False)
        super().__init__(backbone, backbone_train_mode=backbone_train_mode)
        self.resolved = resolve_taps(backbone, UniPTConfig(probe_size=probe_size))
        self.tapper = BackboneTapper(backbone, self.resolved)
        self.backbone_fingerprint = fingerprint(backbone)  # lets an activation cache check its identity

    def tap(self, **backbone_inputs: object) -> Taps:
        """Run the frozen backbone under ``torch.no_grad()`` and return its taps."""
        return self.tapper(backbone_inputs)

    def adapt(self, taps: Taps, consume: bool = False) -> AdaptedOutput:
        """Features from taps computed earlier (e.g. read from an activation cache)."""
        return token_output(taps.hidden[-1], taps.mask)

    def tap_identity(self) -> dict[str, Any]:
        """The same tap selection as UniPT's automatic one (so one activation cache serves both)."""
        return self.resolved.to_dict()
