"""Cross-stream UniPT for encoder-decoder backbones (MDETR).

Encoder side: a guided branch over the encoder taps gives a side memory ``S = G_E + P_E(M_E)``
``[B, L_enc, d]`` (no up-projection). Decoder side: each tapped decoder layer
``T_k = down_k(D_k)`` first reads the side memory,
``T_k <- T_k + crosser_k(L1row(relu(T_k S^T * m)) S)`` (no identity), then meets the last decoder
layer as guide. The stack ``[T_k..., G_D + P_D(M_D)]`` goes through ``U``: ``[k+1, B, Q, out]``; its
last element replaces the decoder output and the others feed auxiliary losses.
"""

from __future__ import annotations

import torch
from torch import nn

from unipt.config import UniPTConfig
from unipt.nn.branch import GuidedBranch
from unipt.nn.layers import init_weights, make_up_proj
from unipt.outputs import AdaptedOutput


class CrossStreamSideNetwork(nn.Module):
    """MDETR's encoder + decoder UniPT (see module docstring)."""

    def __init__(self, config: UniPTConfig):
        super().__init__()
        if config.input_kind != "cross_stream":
            raise ValueError(f"CrossStreamSideNetwork needs input_kind='cross_stream', not {config.input_kind!r}")
        self.config = config
        d = config.resolved_side_width
        self.encoder = GuidedBranch(config, config._require("in_widths"), d)
        self.decoder = GuidedBranch(config, config._require("decoder_widths"), d, crossers=True)
        self.up_proj = make_up_proj(config.up_proj, d, config.output_width)
        init_weights(self, config.init)

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
        stack = self.up_proj(torch.stack([*taps, fused]))
        return AdaptedOutput(stack[-1], None, stack[-1].mean(1), alpha, aux_hidden_states=stack[:-1])
