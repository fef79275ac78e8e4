"""Linear probe: the backbone is frozen and run without autograd; only the task head trains."""

from __future__ import annotations

import torch
from torch import nn

from unipt.baselines._features import primary_tensor, token_output
from unipt.baselines.base import AdaptedMethod
from unipt.outputs import AdaptedOutput


class FrozenProbe(AdaptedMethod):
    """Frozen backbone under ``torch.no_grad()``; returns its final hidden state / feature map as tokens.

    The wrapper itself has 0 trainable parameters and saves nothing: the head on top is the only thing
    that trains. Output: ``last_hidden_state`` ``[B, L, D]`` (``[B, H*W, C]`` for a CNN feature map).
    """

    name = "frozen"
    variant = "linear probe (frozen backbone, head only)"

    def __init__(self, backbone: nn.Module, *, backbone_train_mode: bool = False) -> None:
        backbone.requires_grad_(False)
        super().__init__(backbone, backbone_train_mode=backbone_train_mode)

    def forward(self, *args: object, **backbone_inputs: object) -> AdaptedOutput:
        # no_grad: no graph, so nothing inside the backbone is kept for backward.
        with torch.no_grad():
            features = primary_tensor(self.backbone(*args, **backbone_inputs))
        return token_output(features, backbone_inputs.get("attention_mask"))  # type: ignore[arg-type]
