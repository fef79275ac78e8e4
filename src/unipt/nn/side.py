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

from typing import Any

import torch
from torch import nn

from unipt.nn.branch import GuidedBranch, select_targets
from unipt.nn.layers import init_weights, up_projection, zero_last_linear
from unipt.outputs import AdaptedOutput, as_tokens, masked_mean

SIDE_KINDS = ("sequence", "spatial", "single_query")


class UniPTSideNetwork(nn.Module):
    """Side network for ``sequence``, ``spatial`` and ``single_query`` inputs (see module docstring).

    Sub-layers: ``branch`` (:class:`GuidedBranch`) and ``up`` (U: ``linear`` + optional ``norm``).

    Args:
        in_widths: widths of the tapped layers, guide last (channels for ``spatial``).
        side_width: ``d``. out_width: width of the output.
        input_kind: ``sequence``, ``spatial`` or ``single_query``.
        final_width: width of the frozen final embedding (``single_query``: the guide and the residual).
        target_layers: which taps the guide re-weights (``None``: all but the guide; all for ``single_query``).
        up_proj: form of U. output_mode: ``replace`` the frozen output or ``residual`` (add to it).
        init: ``default``, ``bert`` or ``xavier``. zero_init_up: start U's Linear at zero.
        **branch_options: forms, eps, skip, ablation and kernel switches of :class:`GuidedBranch`.
    """

    def __init__(
        self,
        in_widths: list[int],
        side_width: int,
        out_width: int,
        *,
        input_kind: str = "sequence",
        final_width: int | None = None,
        target_layers: list[int] | None = None,
        up_proj: str = "relu_linear",
        output_mode: str = "replace",
        init: str = "default",
        zero_init_up: bool = False,
        **branch_options: Any,
    ):
        super().__init__()
        if input_kind not in SIDE_KINDS:
            raise ValueError(
                f"UniPTSideNetwork handles {'/'.join(SIDE_KINDS)} inputs, not {input_kind!r}; "
                "use CrossStreamSideNetwork for 'cross_stream'"
            )
        single_query = input_kind == "single_query"
        if single_query and final_width is None:
            raise ValueError("single_query needs final_width, the width of the frozen final embedding")
        self.in_widths, self.input_kind, self.final_width = list(in_widths), input_kind, final_width
        self.output_mode = output_mode
        guide_width = final_width if single_query else in_widths[-1]
        if output_mode == "residual" and out_width != guide_width:
            raise ValueError(
                f"output_mode='residual' adds the frozen output (width {guide_width}) to the side "
                f"output (width {out_width}); set out_width={guide_width} or use 'replace'"
            )
        if output_mode not in ("replace", "residual"):
            raise ValueError(f"Unknown output_mode {output_mode!r}; use 'replace' or 'residual'")
        targets = select_targets(target_layers, len(in_widths), include_last=single_query)
        self.branch = GuidedBranch(
            list(in_widths), side_width, targets, embedding_guide=final_width if single_query else None,
            spatial=input_kind == "spatial", **branch_options,
        )
        self.up = up_projection(up_proj, side_width, out_width)
        init_weights(self, init)
        if zero_init_up:
            zero_last_linear(self.up)

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
        kind = self.input_kind
        layer_mask = None if kind == "spatial" else mask
        frozen_last = hidden[-1]
        fused, _, alpha = self.branch(hidden, layer_mask, final=final, class_index=class_index)
        out = self.up(fused)
        if self.output_mode == "residual":
            frozen = final.unsqueeze(1) if kind == "single_query" else as_tokens(frozen_last)
            out = out + frozen.to(out.dtype)
        if kind == "single_query":
            return AdaptedOutput(out, None, out[:, 0], alpha)
        return AdaptedOutput(out, layer_mask, masked_mean(out, layer_mask), alpha)

    def _check(self, hidden: list[torch.Tensor], mask: torch.Tensor | None, final: torch.Tensor | None) -> None:
        widths = self.in_widths
        if len(hidden) != len(widths):
            raise ValueError(
                f"expected {len(widths)} tapped layers (in_widths), got {len(hidden)}; "
                "the side network was built for another tap selection"
            )
        spatial = self.input_kind == "spatial"
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
        if self.input_kind == "single_query" and (final is None or final.shape[-1] != self.final_width):
            got = None if final is None else tuple(final.shape)
            raise ValueError(
                f"single_query needs the frozen final embedding [B, {self.final_width}], got {got}; "
                "set UniPTConfig.final_output to the backbone output attribute that holds it"
            )
