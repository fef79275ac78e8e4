"""UniPT on CLIP-ViL, as released: the ``clipvil`` side network replaces the encoder's final joint states.

The side network reads the 13 joint hidden states (embedding + 12 layers) with the joint mask (text
padding and padded grid cells masked, every real visual cell valid). Its output ``[B, Lt+Lv, 768]`` takes
the place of the frozen final layer; the frozen pooler (dense on token 0, no tanh) turns its [CLS] into
``pooled``, which the answer head (``logit_fc``) reads. Gradients flow through the frozen pooler's
computation into the side network; the pooler's weights never change.
"""

from __future__ import annotations

import dataclasses

import torch

from unipt.config import UniPTConfig
from unipt.model import UniPTModel
from unipt.models.clipvil.encoder import CLIPViLBackbone
from unipt.models.clipvil.weights import load_strict
from unipt.outputs import AdaptedOutput
from unipt.taps import Taps


class CLIPViLUniPT(UniPTModel):
    """Frozen :class:`CLIPViLBackbone` + UniPT side network (``clipvil`` preset by default) + frozen pooler.

    ``forward(**inputs)`` returns :class:`~unipt.outputs.AdaptedOutput` with ``last_hidden_state`` the side
    output over the joint sequence, ``attention_mask`` the joint mask and ``pooled`` the frozen pooler's
    output on the side output's [CLS]. Side weights of a released UniPT checkpoint (``encoder.side_*``),
    kept by the loader on ``backbone.released_side``, are loaded when present.
    """

    backbone: CLIPViLBackbone

    def __init__(self, backbone: CLIPViLBackbone, config: UniPTConfig | None = None,
                 example_inputs: dict[str, torch.Tensor] | None = None):
        if not isinstance(backbone, CLIPViLBackbone):
            raise TypeError(f"CLIPViLUniPT adapts a CLIPViLBackbone, got {type(backbone).__name__}")
        config = config or UniPTConfig(preset="clipvil")
        if config.tap_source is None:  # the user's config is left as given
            config = dataclasses.replace(config, tap_source="hidden_states")
        super().__init__(backbone, config, example_inputs or backbone.example_inputs())
        released = getattr(backbone, "released_side", None)
        if released:
            load_strict(self.side, released, f"UniPT side network ({self.variant})", "the checkpoint's encoder.side_*")

    def tap(self, **inputs: torch.Tensor) -> Taps:
        """The joint hidden states and the joint mask, computed with no autograd graph."""
        with torch.no_grad():
            out = self.backbone(**inputs)
        return Taps(list(out.hidden_states), out.attention_mask)

    def adapt(self, taps: Taps, consume: bool = False) -> AdaptedOutput:
        out = super().adapt(taps, consume)
        out.pooled = self.backbone.pooler(out.last_hidden_state)
        return out

    @property
    def variant(self) -> str:
        return f"UniPT on CLIP-ViL (preset {self.config.preset}, side width {self.dims.side_width}, frozen pooler)"
