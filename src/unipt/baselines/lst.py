"""Ladder Side-Tuning (Sung, Cho & Bansal, NeurIPS 2022), random-init variant.

A narrow side network (width ``d = D / reduction``) runs next to the frozen backbone. It is a *chain*:
one small block per backbone layer, each fed by a gated "ladder" down-projection of that layer's
hidden state::

    side_0 = down_0(h_0)
    side_i = block_i( g_i * down_i(h_i) + (1 - g_i) * side_{i-1} ),  g_i = sigmoid(a_i / T),  T = 0.1
    output = up(LayerNorm(side_N))                                    # back to width D

The backbone runs under ``torch.no_grad()``, so backward only visits the side chain and the ladders.
Unlike UniPT, the side chain is as deep as the backbone, so its activations grow with depth.

Honest naming: the paper initialises the side network by Fisher-pruning the backbone's weights; this
implementation does **not** (PyTorch default init), hence ``variant`` below, which every report prints.
Token backbones get one pre-norm transformer block per layer; CNN feature maps are first average-pooled
to the final stage's grid and get a pointwise (1x1-conv-equivalent) residual MLP block per stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unipt.method import AdaptedMethod
from unipt.outputs import AdaptedOutput, as_tokens, token_output
from unipt.taps.auto import find_cnn_stages, is_hf_model, probe_inputs
from unipt.taps.features import collect_hidden_states


class PointwiseBlock(nn.Module):
    """Pre-norm residual MLP applied to every grid cell independently (a 1x1-conv block), ``[B, L, d]``."""

    def __init__(self, width: int, ffn_ratio: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, ffn_ratio * width)
        self.fc2 = nn.Linear(ffn_ratio * width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.dropout(self.fc2(F.gelu(self.fc1(self.norm(x)))))


class TransformerBlock(nn.Module):
    """One pre-norm transformer layer on ``[B, L, d]``; ``padding_mask`` ``[B, L]``, True = pad."""

    def __init__(self, width: int, heads: int, ffn_ratio: int, dropout: float) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            width,
            heads,
            dim_feedforward=ffn_ratio * width,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.layer(x, src_key_padding_mask=padding_mask)


def _side_heads(width: int, preferred: int) -> int:
    """Largest head count <= ``preferred`` that divides ``width`` (LST keeps the backbone's head count)."""
    for heads in range(max(1, min(preferred, width)), 0, -1):
        if width % heads == 0:
            return heads
    return 1


def _probe_taps(
    backbone: nn.Module, layer_names: Sequence[str] | None, example_inputs: Mapping[str, Any] | None
) -> tuple[list[int], bool]:
    """Widths of the tapped hidden states and whether they are CNN feature maps.

    With ``example_inputs`` one no-grad forward (backbone in eval mode, so BatchNorm statistics are not
    touched) measures them; otherwise a Hugging Face transformer config is read.
    """
    if example_inputs is not None:
        was_training = backbone.training
        backbone.eval()
        try:
            with torch.no_grad():
                hidden, _ = collect_hidden_states(backbone, dict(example_inputs), layer_names)
        finally:
            backbone.train(was_training)
        is_map = hidden[-1].dim() == 4
        return [h.shape[1] if is_map else h.shape[-1] for h in hidden], is_map
    config = getattr(backbone, "config", None)
    width, depth = getattr(config, "hidden_size", None), getattr(config, "num_hidden_layers", None)
    if layer_names is None and isinstance(width, int) and isinstance(depth, int):
        return [width] * (depth + 1), False  # embeddings + one state per layer
    raise ValueError("cannot infer the tap widths: pass example_inputs (one batch of backbone inputs)")


def _auto_stages(
    backbone: nn.Module, example_inputs: Mapping[str, Any] | None, max_stages: int, probe_size: int
) -> tuple[list[str], Mapping[str, Any]]:
    """Spatial stages of a plain CNN (shallow to deep) and the inputs that found them."""
    inputs = dict(example_inputs) if example_inputs is not None else probe_inputs(backbone, probe_size)
    was_training = backbone.training
    backbone.eval()  # the probe must not touch BatchNorm statistics
    try:
        stages = find_cnn_stages(backbone, inputs, max_stages)
    finally:
        backbone.train(was_training)
    if len(stages) < 2:
        raise ValueError(f"LST found {len(stages)} spatial stage(s) in {type(backbone).__name__}; pass layer_names")
    return stages, inputs


class LadderSideTuning(AdaptedMethod):
    """LST side network on a frozen backbone; ``forward(**inputs)`` -> tokens ``[B, L, D]``.

    Args:
        backbone: frozen (``requires_grad=False``) and run under ``torch.no_grad()``.
        reduction: side width ``d = D_final // reduction`` (the paper uses 8 or 16).
        gate_temperature: ``T`` in ``g_i = sigmoid(a_i / T)``; the paper's 0.1.
        gate_init: initial ``a_i`` (0 gives ``g_i = 0.5``).
        num_heads: side attention heads; default keeps the backbone's count (clipped to divide ``d``).
        ffn_ratio: side feed-forward width = ``ffn_ratio * d``.
        dropout: dropout inside the side blocks.
        layer_names: hook these submodules instead of Hugging Face ``output_hidden_states``; the first
            tap initialises the side state, each later tap gets one gate and one block. For a backbone
            that is not a Hugging Face model, ``None`` picks its spatial stages automatically (the same
            stage finder UniPT uses, up to ``max_stages`` of them, deepest last).
        example_inputs: one batch used to measure tap widths (a ``probe_size`` probe image when omitted
            for an automatically staged CNN).
        max_stages: how many CNN stages automatic selection keeps. probe_size: side of the probe image.
        backbone_train_mode: keep the frozen backbone in train mode (dropout on); default eval.
    """

    name = "lst"
    variant = "LST (random-init side network, no pruning init)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        reduction: int = 8,
        gate_temperature: float = 0.1,
        gate_init: float = 0.0,
        num_heads: int | None = None,
        ffn_ratio: int = 4,
        dropout: float = 0.1,
        layer_names: Sequence[str] | None = None,
        example_inputs: Mapping[str, Any] | None = None,
        backbone_train_mode: bool = False,
        max_stages: int = 8,
        probe_size: int = 224,
    ) -> None:
        backbone.requires_grad_(False)
        super().__init__(backbone, backbone_train_mode=backbone_train_mode)
        if layer_names is None and not is_hf_model(backbone):
            layer_names, example_inputs = _auto_stages(backbone, example_inputs, max_stages, probe_size)
        widths, self.is_map = _probe_taps(backbone, layer_names, example_inputs)
        if len(widths) < 2:
            raise ValueError("LST needs at least two taps (one to start the side state, one per block)")
        self.layer_names = list(layer_names) if layer_names is not None else None
        self.out_width = widths[-1]
        self.side_width = side = max(1, widths[-1] // reduction)
        self.gate_temperature = gate_temperature
        heads = num_heads or _side_heads(
            side, getattr(getattr(backbone, "config", None), "num_attention_heads", 8)
        )
        self.downs = nn.ModuleList(nn.Linear(w, side) for w in widths)
        self.blocks = nn.ModuleList(
            PointwiseBlock(side, ffn_ratio, dropout)
            if self.is_map
            else TransformerBlock(side, heads, ffn_ratio, dropout)
            for _ in widths[1:]
        )
        self.gate_logits = nn.Parameter(torch.full((len(self.blocks),), float(gate_init)))
        self.final_norm = nn.LayerNorm(side)
        self.up = nn.Linear(side, self.out_width)

    def gate_values(self) -> torch.Tensor:
        """Ladder gates ``g = sigmoid(a / T)``, shape ``[n_blocks]``."""
        return torch.sigmoid(self.gate_logits / self.gate_temperature)

    def _side_inputs(self, hidden: list[torch.Tensor]) -> list[torch.Tensor]:
        """Hidden states as side-dtype tokens ``[B, L, C_i]``; feature maps pooled to the final grid first."""
        dtype = self.up.weight.dtype
        if self.is_map:
            grid = hidden[-1].shape[-2:]
            hidden = [F.adaptive_avg_pool2d(h, grid) for h in hidden]
        return [as_tokens(h).to(dtype) for h in hidden]

    def forward(self, *args: Any, **backbone_inputs: Any) -> AdaptedOutput:
        mask = backbone_inputs.get("attention_mask")
        # The whole backbone (and the pooling of its maps) records no graph: nothing is saved in it.
        with torch.no_grad():
            hidden, _ = collect_hidden_states(self.backbone, backbone_inputs, self.layer_names, args)
            taps = self._side_inputs(hidden)
        padding = (mask == 0) if (mask is not None and not self.is_map) else None
        gates = self.gate_values()
        side = self.downs[0](taps[0])
        for i, block in enumerate(self.blocks):
            side = gates[i] * self.downs[i + 1](taps[i + 1]) + (1 - gates[i]) * side
            side = block(side, padding)
        return token_output(self.up(self.final_norm(side)), mask)

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """The side network only (ladders, blocks, gates, final norm and up-projection)."""
        return {k: v.detach() for k, v in self.state_dict().items() if not k.startswith("backbone.")}
