"""From a causal-LM :class:`~unipt.config.UniPTConfig` and the decoder's hidden-state widths to the causal
side network (:mod:`unipt.nn` takes only plain arguments; this is where the config is read)."""

from __future__ import annotations

from unipt.config import UniPTConfig
from unipt.nn.causal import CausalSideNetwork


def causal_side_width(config: UniPTConfig, in_widths: list[int]) -> int:
    """``d``: the configured ``side_width``, else the decoder width divided by ``reduction``."""
    if config.side_width is not None:
        return config.side_width
    width = int(in_widths[-1] / float(config.reduction or 1.0))
    if width < 1:
        raise ValueError(f"reduction={config.reduction} leaves no side width from {in_widths[-1]}")
    return width


def build_causal_side_network(config: UniPTConfig, in_widths: list[int]) -> CausalSideNetwork:
    """The causal side network ``config`` describes on a decoder with hidden states of ``in_widths``
    (``[D] * (num_layers + 1)``, the final normalised state last)."""
    if config.out_width is not None and config.out_width != in_widths[-1]:
        raise ValueError(
            f"UniPTConfig.out_width={config.out_width}: a causal LM's side output is added to the decoder's final "
            f"state (width {in_widths[-1]}); drop out_width"
        )
    return CausalSideNetwork(
        in_widths, causal_side_width(config, in_widths), target_layers=config.target_layers,
        down_proj=config.down_proj, norm=config.norm, fusion_form=config.fusion, up_proj=config.up_proj,
        eps=config.eps, eps_mode=config.eps_mode, interaction=config.interaction == "guided",
        aggregation=config.aggregation, kernel=config.kernel, memory=config.memory,
        query_block=config.query_block, init=config.init,
    )
