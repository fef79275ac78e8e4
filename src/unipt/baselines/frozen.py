"""Linear probe: the backbone is frozen and run without autograd; only the task head trains."""

from __future__ import annotations

from torch import nn

from unipt.baselines._features import token_output
from unipt.baselines.base import AdaptedMethod
from unipt.config import UniPTConfig
from unipt.outputs import AdaptedOutput
from unipt.taps import BackboneTapper, Taps


class FrozenProbe(AdaptedMethod):
    """Frozen backbone under ``torch.no_grad()``; returns its final features as tokens.

    The final features are exactly what UniPT uses as its guide (the last hidden state of a
    Transformer, the last stage of a CNN, found by the same tap selection), so "frozen vs UniPT" compares
    the same frozen signal with and without the side network. The wrapper has 0 trainable parameters.
    Output: ``last_hidden_state`` ``[B, L, D]`` (``[B, H*W, C]`` for a CNN feature map).
    """

    name = "frozen"
    variant = "linear probe (frozen backbone, head only)"

    def __init__(self, backbone: nn.Module, *, backbone_train_mode: bool = False, probe_size: int = 224) -> None:
        backbone.requires_grad_(False)
        super().__init__(backbone, backbone_train_mode=backbone_train_mode)
        # Only the deepest CNN stage is needed; Transformers expose every hidden state anyway.
        self.tapper = BackboneTapper(backbone, UniPTConfig(max_stages=1, probe_size=probe_size))

    def forward(self, *args: object, **backbone_inputs: object) -> AdaptedOutput:
        if args:
            backbone_inputs = {"pixel_values": args[0], **backbone_inputs}
        return self.adapt(self.tapper(backbone_inputs))  # the tapper runs under torch.no_grad()

    def adapt(self, taps: Taps) -> AdaptedOutput:
        """Features from taps computed earlier (e.g. read from an activation cache)."""
        return token_output(taps.hidden[-1], taps.mask)
