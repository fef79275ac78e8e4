"""One guided branch: the core of UniPT shared by every variant.

``G + P(M)`` from tapped layers: down-project the guide and each target layer, let the guide re-weight
every layer (:class:`ParallelInteraction`), mix the layers with one shared confidence gate
(:class:`ConfidenceAggregation`) and fuse. Variants plug in here:

* ``spatial``: each CNN stage is first pooled onto the guide grid (:class:`GuidedWindowPooling`);
* ``single_query``: the guide is the projected frozen final embedding, one token ``[B, 1, d]``;
* ``crossers``: (MDETR decoder) each tap first reads a side memory before meeting the guide.
"""

from __future__ import annotations

import torch
from torch import nn

from unipt.nn.aggregation import ConfidenceAggregation
from unipt.nn.fused import LayerFeed, MixOptions, guided_mix
from unipt.nn.interaction import ParallelInteraction
from unipt.nn.layers import Projection, down_projection, fusion
from unipt.nn.pooling import GuidedWindowPooling
from unipt.outputs import as_tokens, masked_mean


def select_targets(target_layers: list[int] | None, num_taps: int, include_last: bool = False) -> list[int]:
    """Indices of the taps the guide interacts with, validated against ``num_taps``.

    ``None``: every tap but the last (the guide itself), or every tap when ``include_last`` (a guide that
    is not a tap, ``single_query``). Negative indices count from the end.
    """
    if target_layers is None:
        return list(range(num_taps if include_last else num_taps - 1))
    bad = [i for i in target_layers if not -num_taps <= i < num_taps]
    if bad:
        raise ValueError(
            f"target_layers {bad} are out of range for {num_taps} tapped layers; use indices 0..{num_taps - 1}"
        )
    return [i % num_taps for i in target_layers]


class GuidedBranch(nn.Module):
    """Down-project, interact, aggregate, fuse.

    Sub-layers: ``guide`` (the guide's projection), ``layers.<k>`` (target ``k``'s down-projection:
    ``linear`` + ``norm``), ``pools.<k>`` (CNN stages), ``crossers.<k>`` (cross-stream), ``aggregation.gate``
    (the one shared confidence gate) and ``fusion`` (P).

    Args:
        widths: widths of the tapped layers, guide last.
        width: side width ``d``.
        targets: indices of the target layers in ``widths`` (:func:`select_targets`).
        down_proj / norm / fusion_form: forms of the down-projections and of P (see :mod:`unipt.nn.layers`).
        guide_residual: keep the ``G +`` term of ``G + P(M)``.
        skip / eps / eps_mode / interaction: the parallel interaction (:class:`ParallelInteraction`);
            ``interaction=False`` is the "no interaction" ablation.
        aggregation: ``confidence`` or ``uniform`` (ablation).
        guided_pooling: guided window pooling of CNN stages (``False``: plain average pooling).
        embedding_guide: width of a frozen final embedding projected into a one-token guide
            (``single_query``); ``None``: the guide is the last tap.
        spatial: taps are CNN maps ``[B, C, H, W]`` pooled onto the last map's grid.
        crossers: add the cross-stream update with a side memory (MDETR decoder).
        kernel / memory / query_block: how the interaction + aggregation are computed (``fused`` or
            ``reference``; see :mod:`unipt.nn.fused`); the function is the same.
    """

    def __init__(
        self,
        widths: list[int],
        width: int,
        targets: list[int],
        *,
        down_proj: str = "linear_norm",
        norm: str = "layer",
        fusion_form: str = "linear_norm",
        guide_residual: bool = True,
        skip: str = "identity",
        eps: float = 1e-6,
        eps_mode: str = "add",
        interaction: bool = True,
        aggregation: str = "confidence",
        guided_pooling: bool = True,
        embedding_guide: int | None = None,
        spatial: bool = False,
        crossers: bool = False,
        kernel: str = "fused",
        memory: str = "default",
        query_block: int | None = None,
    ):
        super().__init__()
        self.single_query, self.guide_residual = embedding_guide is not None, guide_residual
        self.skip_class_token = skip == "class_token"
        self.targets = list(targets)
        if embedding_guide is not None:
            self.guide = down_projection("relu_linear", embedding_guide, width, norm)
        else:
            self.guide = down_projection(down_proj, widths[-1], width, norm)
        self.layers = nn.ModuleList(down_projection(down_proj, widths[i], width, norm) for i in self.targets)
        self.pools = nn.ModuleList(
            GuidedWindowPooling(widths[i], widths[-1], eps, guided_pooling) for i in self.targets
        ) if spatial else None
        self.crossers = nn.ModuleList(
            Projection(width, width, norm=norm) for _ in self.targets
        ) if crossers else None
        self.cross = ParallelInteraction(eps, eps_mode, skip="none")
        self.interaction = ParallelInteraction(eps, eps_mode, skip, enabled=interaction)
        self.aggregation = ConfidenceAggregation(width, aggregation)
        self.fusion = fusion(fusion_form, width, norm)
        if kernel not in ("fused", "reference"):
            raise ValueError(f"Unknown kernel {kernel!r}; use 'fused' or 'reference'")
        if memory == "min" and kernel != "fused":
            raise ValueError("memory='min' recomputes inside the fused kernel; set kernel='fused' (the default)")
        self.kernel, self.memory = kernel, memory
        self.mix_options = MixOptions(
            skip=skip, eps=eps, eps_mode=eps_mode, interaction=interaction, uniform=aggregation == "uniform",
            block=query_block,
        )

    def forward(
        self,
        hidden: list[torch.Tensor | None],
        mask: torch.Tensor | None = None,
        *,
        final: torch.Tensor | None = None,
        class_index: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Fuse the taps.

        Args:
            hidden: tapped layers (guide last). Each target entry is set to ``None`` once consumed,
                so no reference outlives its use beyond what autograd needs.
            mask: ``[B, L]`` key mask of the taps (``None``: all real).
            final: ``[B, D]`` frozen embedding (``single_query`` guide).
            class_index: ``[B]`` class-token positions (``class_token`` skip; ``None`` = token 0).
            memory / memory_mask: ``[B, L_m, d]`` / ``[B, L_m]`` side memory for the crossers.

        Returns:
            fused ``[B, Lq, d]``, the down-projected taps ``[B, L, d]`` each, layer weights ``[B, n]``.
        """
        last = hidden[-1]
        if self.single_query:
            guide = self.guide(final).unsqueeze(1)
            guide_pooled = guide[:, 0]
        else:
            guide = self.guide(as_tokens(last))
            guide_pooled = masked_mean(guide, mask)
        if self.kernel == "fused":
            feeds = [self._feed(slot, hidden, memory, memory_mask) for slot in range(len(self.targets))]
            taps = [feed.x for feed in feeds if feed.fn is None]
            mixed, alpha = guided_mix(guide, guide_pooled, feeds, self.aggregation.gate, mask, class_index,
                                      self.mix_options)
        else:
            taps, pooled, interacted = [], [], []
            for slot in range(len(self.targets)):
                feats = self._features(slot, hidden, memory, memory_mask)
                cls = gather_tokens(feats, class_index) if self.skip_class_token else None
                taps.append(feats)
                pooled.append(masked_mean(feats, mask))
                interacted.append(self.interaction(guide, feats, mask, cls))
            mixed, alpha = self.aggregation(guide_pooled, torch.stack(pooled), torch.stack(interacted))
        fused = self.fusion(mixed)
        return (guide + fused if self.guide_residual else fused), taps, alpha

    def _layer_input(self, slot: int, hidden: list[torch.Tensor | None]) -> torch.Tensor:
        """Target ``slot``'s tap as tokens ``[B, L, D_i]`` (pooled onto the guide grid for CNN stages)."""
        layer = self.targets[slot]
        h, last = hidden[layer], hidden[-1]
        if self.pools is not None:
            h = self.pools[slot](h, last)
        if layer != len(hidden) - 1:
            hidden[layer] = None
        return as_tokens(h)

    def _features(self, slot: int, hidden: list[torch.Tensor | None], memory: torch.Tensor | None,
                  memory_mask: torch.Tensor | None) -> torch.Tensor:
        """Down-projected target layer ``F_i`` ``[B, L, d]`` (after the crosser, if any)."""
        feats = self.layers[slot](self._layer_input(slot, hidden))
        if self.crossers is not None:
            feats = feats + self.crossers[slot](self.cross(feats, memory, memory_mask))
        return feats

    def _feed(self, slot: int, hidden: list[torch.Tensor | None], memory: torch.Tensor | None,
              memory_mask: torch.Tensor | None) -> LayerFeed:
        """What the fused kernel keeps for target ``slot`` and what it recomputes in backward.

        Default: the pre-norm projection is kept and the LayerNorm recomputed. ``memory="min"``: the tap
        is kept in bf16 and the whole down-projection recomputed. BatchNorm (batch statistics) and the
        cross-stream crossers are not recomputed: their output is kept as it is.
        """
        down = self.layers[slot]
        recomputable = self.crossers is None and not any(isinstance(m, nn.BatchNorm1d) for m in down.modules())
        if not recomputable:
            return LayerFeed(self._features(slot, hidden, memory, memory_mask))
        h = self._layer_input(slot, hidden)
        if self.memory == "min":
            return LayerFeed(h, down, tuple(down.parameters()), save_dtype=torch.bfloat16)
        if isinstance(down.norm, nn.LayerNorm):
            return LayerFeed(down.project(h), down.norm, tuple(down.norm.parameters()))
        return LayerFeed(down(h))


def gather_tokens(feats: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """Token ``index[b]`` of each sample: ``[B, L, d] -> [B, d]`` (token 0 when ``index`` is None)."""
    if index is None:
        return feats[:, 0]
    return feats[torch.arange(feats.shape[0], device=feats.device), index.to(feats.device)]
