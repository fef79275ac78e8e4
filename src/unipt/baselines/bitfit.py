"""BitFit (Ben Zaken et al., ACL 2022): only bias terms train; gradients still flow through the backbone."""

from __future__ import annotations

from torch import nn

from unipt.method import AdaptedMethod
from unipt.outputs import AdaptedOutput, token_output
from unipt.taps.features import backbone_features, final_feature_layer


class BitFit(AdaptedMethod):
    """Every parameter whose name ends in ``bias`` trains (Linear, conv and LayerNorm biases), nothing else.

    Activations inside the backbone are still saved for backward, because the bias gradients of early
    layers need the gradient to pass through all later layers. Output: final tokens ``[B, L, D]``.
    """

    name = "bitfit"
    variant = "BitFit (all bias terms, incl. LayerNorm biases)"

    def __init__(self, backbone: nn.Module, *, backbone_train_mode: bool = True, probe_size: int = 224) -> None:
        biases = 0
        for name, param in backbone.named_parameters():
            is_bias = name.rsplit(".", 1)[-1] == "bias"
            param.requires_grad_(is_bias)
            biases += int(is_bias)
        if biases == 0:
            raise ValueError(f"{type(backbone).__name__} has no bias parameters: BitFit would train nothing")
        super().__init__(backbone, backbone_train_mode=backbone_train_mode)
        self.final_layer = final_feature_layer(backbone, probe_size)  # CNN classifiers: their last stage

    def forward(self, *args: object, **backbone_inputs: object) -> AdaptedOutput:
        features = backbone_features(self.backbone, backbone_inputs, self.final_layer, args)
        return token_output(features, backbone_inputs.get("attention_mask"))  # type: ignore[arg-type]
