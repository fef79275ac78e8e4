"""Full fine-tuning: every backbone parameter trains (the memory upper bound)."""

from __future__ import annotations

import torch
from torch import nn

from unipt.method import AdaptedMethod
from unipt.outputs import AdaptedOutput, token_output
from unipt.taps.features import backbone_features, final_feature_layer


class FullFineTuning(AdaptedMethod):
    """All parameters trainable; the backbone follows the wrapper's train/eval mode (dropout on in training).

    :meth:`saved_state_dict` is the whole backbone ``state_dict`` (buffers included), because that is
    what a fine-tuned checkpoint has to store. Output: final hidden state as tokens ``[B, L, D]``.
    """

    name = "full"
    variant = "full fine-tuning (all parameters)"

    def __init__(self, backbone: nn.Module, *, backbone_train_mode: bool = True, probe_size: int = 224) -> None:
        backbone.requires_grad_(True)
        super().__init__(backbone, backbone_train_mode=backbone_train_mode)
        self.final_layer = final_feature_layer(backbone, probe_size)  # CNN classifiers: their last stage

    def forward(self, *args: object, **backbone_inputs: object) -> AdaptedOutput:
        features = backbone_features(self.backbone, backbone_inputs, self.final_layer, args)
        return token_output(features, backbone_inputs.get("attention_mask"))  # type: ignore[arg-type]

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """The full backbone checkpoint (parameters and persistent buffers)."""
        return {k: v.detach() for k, v in self.backbone.state_dict().items()}
