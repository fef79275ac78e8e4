"""The UniPT side network for token sequences, CNN feature maps and single-token guides.

Reading order (``sequence`` kind, hidden states ``H_0 .. H_N`` each ``[B, L, D_i]``)::

    G    = down_N(H_N)                     guide, [B, L, d]
    F_i  = down_i(H_i)                     every target layer, [B, L, d]
    F'_i = ParallelInteraction(G, F_i)     [B, L, d]
    M, a = ConfidenceAggregation(g, t_i, F'_i)
    out  = U(G + P(M))                     [B, L, out]  (replace), or + H_N (residual)

``spatial`` pools every stage onto the final stage's grid first and treats grid cells as tokens
(output ``[B, h*w, out]``). ``single_query`` (CLIP4Clip) projects the frozen final embedding into a
one-token guide, adds each layer's class token as the skip and adds ``U(M)`` to the embedding.
The shared core lives in :class:`unipt.nn.branch.GuidedBranch`.
"""

from __future__ import annotations

import torch
from torch import nn

from unipt.config import UniPTConfig
from unipt.nn.branch import GuidedBranch, to_tokens
from unipt.nn.layers import init_weights, make_up_proj, zero_last_linear
from unipt.outputs import AdaptedOutput, masked_mean


class UniPTSideNetwork(nn.Module):
    """Side network for ``sequence``, ``spatial`` and ``single_query`` inputs (see module docstring)."""

    def __init__(self, config: UniPTConfig):
        super().__init__()
        if config.input_kind not in ("sequence", "spatial", "single_query"):
            raise ValueError(
                f"UniPTSideNetwork handles sequence/spatial/single_query inputs, not {config.input_kind!r}; "
                "use CrossStreamSideNetwork for 'cross_stream'"
            )
        self.config = config
        d = config.resolved_side_width
        self.branch = GuidedBranch(
            config, config._require("in_widths"), d,
            single_query=config.input_kind == "single_query", spatial=config.input_kind == "spatial",
        )
        self.up_proj = make_up_proj(config.up_proj, d, config.output_width)
        if config.output_mode == "residual" and config.output_width != config.guide_width:
            raise ValueError(
                f"output_mode='residual' adds the frozen output (width {config.guide_width}) to the side "
                f"output (width {config.output_width}); set out_width={config.guide_width} or use 'replace'"
            )
        init_weights(self, config.init)
        if config.zero_init_up:
            zero_last_linear(self.up_proj)

    def forward(
        self,
        hidden: list[torch.Tensor],
        mask: torch.Tensor | None = None,
        final: torch.Tensor | None = None,
        class_index: torch.Tensor | None = None,
    ) -> AdaptedOutput:
        """Adapt the tapped layers.

        Args:
            hidden: tapped outputs, ``[B, L, D_i]`` (sequence / single_query) or ``[B, C_i, H_i, W_i]``
                (spatial), guide last. Consumed entries are set to ``None``.
            mask: ``[B, L]`` 1 for real tokens (sequences only).
            final: ``[B, D]`` frozen final embedding (single_query guide and residual).
            class_index: ``[B]`` class-token position per sample (``class_token`` skip).
        """
        self._check(hidden, mask, final)
        kind = self.config.input_kind
        layer_mask = None if kind == "spatial" else mask
        frozen_last = hidden[-1]
        fused, _, alpha = self.branch(hidden, layer_mask, final=final, class_index=class_index)
        out = self.up_proj(fused)
        if self.config.output_mode == "residual":
            frozen = final.unsqueeze(1) if kind == "single_query" else to_tokens(frozen_last)
            out = out + frozen.to(out.dtype)
        if kind == "single_query":
            return AdaptedOutput(out, None, out[:, 0], alpha)
        return AdaptedOutput(out, layer_mask, masked_mean(out, layer_mask), alpha)

    def _check(self, hidden: list[torch.Tensor], mask: torch.Tensor | None, final: torch.Tensor | None) -> None:
        cfg = self.config
        widths = cfg.in_widths
        if len(hidden) != len(widths):
            raise ValueError(
                f"expected {len(widths)} tapped layers (config.in_widths), got {len(hidden)}; "
                "the side network was built for another tap selection"
            )
        spatial = cfg.input_kind == "spatial"
        for i, (h, w) in enumerate(zip(hidden, widths, strict=True)):
            if h.dim() != (4 if spatial else 3) or h.shape[1 if spatial else -1] != w:
                raise ValueError(
                    f"tapped layer {i} has shape {tuple(h.shape)}; the side network expects "
                    f"{'[B, C, H, W]' if spatial else '[B, L, D]'} with width {w}. Rebuild it for this "
                    "backbone (get_unipt_model discovers the widths) or choose other taps."
                )
        if mask is not None and not spatial and tuple(mask.shape) != tuple(hidden[0].shape[:2]):
            raise ValueError(
                f"attention mask shape {tuple(mask.shape)} does not match the tokens {tuple(hidden[0].shape[:2])}"
            )
        if cfg.input_kind == "single_query" and (final is None or final.shape[-1] != cfg.final_width):
            got = None if final is None else tuple(final.shape)
            raise ValueError(
                f"single_query needs the frozen final embedding [B, {cfg.final_width}], got {got}; "
                "set UniPTConfig.final_output to the backbone output attribute that holds it"
            )
