"""Cross-stream UniPT for encoder-decoder backbones (MDETR).

Encoder side: a guided branch over the encoder taps gives a side memory ``S = G_E + P_E(M_E)``
``[B, L_enc, d]`` (no up-projection). Decoder side: each tapped decoder layer
``T_k = down_k(D_k)`` first reads the side memory,
``T_k <- T_k + crosser_k(L1row(relu(T_k S^T * m)) S)`` (no identity), then meets the last decoder
layer as guide. The stack ``[T_k..., G_D + P_D(M_D)]`` goes through ``U``: ``[k+1, B, Q, out]``; its
last element replaces the decoder output and the others feed auxiliary losses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unipt.nn.branch import GuidedBranch, select_targets
from unipt.nn.layers import init_weights, up_projection
from unipt.outputs import AdaptedOutput


class CrossStreamSideNetwork(nn.Module):
    """MDETR's encoder + decoder UniPT (see module docstring).

    Sub-layers: ``encoder`` and ``decoder`` (:class:`GuidedBranch`; the decoder's has ``crossers``) and
    ``up`` (U).

    Args:
        in_widths / decoder_widths: widths of the encoder / decoder taps, guide last.
        side_width: ``d``. out_width: width of the output (default: the decoder guide's width).
        target_layers: which taps each branch's guide re-weights (``None``: all but the guide).
        up_proj: form of U. init: ``default``, ``bert`` or ``xavier``.
        **branch_options: forms, eps, skip, ablation and kernel switches of :class:`GuidedBranch`.
    """

    def __init__(
        self,
        in_widths: list[int],
        decoder_widths: list[int],
        side_width: int,
        out_width: int,
        *,
        target_layers: list[int] | None = None,
        up_proj: str = "relu_linear_norm",
        init: str = "default",
        **branch_options: Any,
    ):
        super().__init__()
        self.encoder = GuidedBranch(list(in_widths), side_width, select_targets(target_layers, len(in_widths)),
                                    **branch_options)
        self.decoder = GuidedBranch(list(decoder_widths), side_width,
                                    select_targets(target_layers, len(decoder_widths)), crossers=True,
                                    **branch_options)
        self.up = up_projection(up_proj, side_width, out_width)
        init_weights(self, init)

    def forward(
        self,
        encoder_hidden: list[torch.Tensor],
        decoder_hidden: list[torch.Tensor],
        encoder_mask: torch.Tensor | None = None,
    ) -> AdaptedOutput:
        """``encoder_hidden``: ``[B, L_enc, D]`` each; ``decoder_hidden``: ``[B, Q, D]`` each (guide last).

        Returns ``last_hidden_state`` ``[B, Q, out]`` and ``aux_hidden_states`` ``[k, B, Q, out]``.
        """
        memory, _, _ = self.encoder(encoder_hidden, encoder_mask)
        fused, taps, alpha = self.decoder(decoder_hidden, None, memory=memory, memory_mask=encoder_mask)
        stack = self.up(torch.stack([*taps, fused]))
        return AdaptedOutput(stack[-1], None, stack[-1].mean(1), alpha, aux_hidden_states=stack[:-1])
