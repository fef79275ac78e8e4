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

from unipt.config import UniPTConfig
from unipt.nn.aggregation import ConfidenceAggregation
from unipt.nn.fused import LayerFeed, MixOptions, guided_mix
from unipt.nn.interaction import ParallelInteraction
from unipt.nn.layers import make_down_proj, make_fusion, make_norm
from unipt.nn.pooling import GuidedWindowPooling
from unipt.outputs import masked_mean


class GuidedBranch(nn.Module):
    """Down-project, interact, aggregate, fuse.

    Args:
        config: the UniPT config (forms, eps, skip, ablation switches).
        widths: widths of the tapped layers, guide last.
        width: side width ``d``.
        single_query: guide from a frozen embedding of width ``config.final_width``.
        spatial: taps are CNN maps ``[B, C, H, W]`` pooled onto the last map's grid.
        crossers: add the cross-stream update with a side memory (MDETR decoder).
    """

    def __init__(
        self,
        config: UniPTConfig,
        widths: list[int],
        width: int,
        *,
        single_query: bool = False,
        spatial: bool = False,
        crossers: bool = False,
    ):
        super().__init__()
        self.single_query, self.guide_residual = single_query, config.guide_residual
        self.skip_class_token = config.skip == "class_token"
        self.targets = config.resolved_targets(len(widths))
        if single_query:
            self.guide_proj = make_down_proj("relu_linear", config.guide_width, width, config.norm)
        else:
            self.guide_proj = make_down_proj(config.down_proj, widths[-1], width, config.norm)
        self.down_projs = nn.ModuleList(
            make_down_proj(config.down_proj, widths[i], width, config.norm) for i in self.targets
        )
        self.pools = nn.ModuleList(
            GuidedWindowPooling(widths[i], widths[-1], config.eps, config.guided_pooling) for i in self.targets
        ) if spatial else None
        self.crossers = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), make_norm(config.norm, width)) for _ in self.targets
        ) if crossers else None
        self.cross = ParallelInteraction(config.eps, config.eps_mode, skip="none")
        self.interaction = ParallelInteraction(
            config.eps, config.eps_mode, config.skip, enabled=config.interaction == "guided"
        )
        self.aggregation = ConfidenceAggregation(width, config.aggregation)
        self.fusion = make_fusion(config.fusion, width, config.norm)
        if config.memory == "min" and config.kernel != "fused":
            raise ValueError("memory='min' recomputes inside the fused kernel; set kernel='fused' (the default)")
        self.kernel, self.memory = config.kernel, config.memory
        self.mix_options = MixOptions(
            skip=config.skip, eps=config.eps, eps_mode=config.eps_mode, interaction=config.interaction == "guided",
            uniform=config.aggregation == "uniform", block=config.query_block,
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
            guide = self.guide_proj(final).unsqueeze(1)
            guide_pooled = guide[:, 0]
        else:
            guide = self.guide_proj(to_tokens(last))
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
        return to_tokens(h)

    def _features(self, slot: int, hidden: list[torch.Tensor | None], memory: torch.Tensor | None,
                  memory_mask: torch.Tensor | None) -> torch.Tensor:
        """Down-projected target layer ``F_i`` ``[B, L, d]`` (after the crosser, if any)."""
        feats = self.down_projs[slot](self._layer_input(slot, hidden))
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
        down = self.down_projs[slot]
        recomputable = self.crossers is None and not any(isinstance(m, nn.BatchNorm1d) for m in down.modules())
        if not recomputable:
            return LayerFeed(self._features(slot, hidden, memory, memory_mask))
        h = self._layer_input(slot, hidden)
        if self.memory == "min":
            return LayerFeed(h, down, tuple(down.parameters()), save_dtype=torch.bfloat16)
        if isinstance(down[-1], nn.LayerNorm):
            return LayerFeed(down[:-1](h), down[-1], tuple(down[-1].parameters()))
        return LayerFeed(down(h))


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, H*W, C]``; token tensors ``[B, L, D]`` pass through."""
    return x.flatten(2).transpose(1, 2) if x.dim() == 4 else x


def gather_tokens(feats: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """Token ``index[b]`` of each sample: ``[B, L, d] -> [B, d]`` (token 0 when ``index`` is None)."""
    if index is None:
        return feats[:, 0]
    return feats[torch.arange(feats.shape[0], device=feats.device), index.to(feats.device)]
