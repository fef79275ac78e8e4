"""From a :class:`~unipt.config.UniPTConfig` (what the user asks for) and the resolved taps (what the
backbone determined) to the side network's sizes and modules. The modules in :mod:`unipt.nn` take only
plain arguments; this is the one place that reads a config to build them."""

from __future__ import annotations

from dataclasses import dataclass

from unipt.config import UniPTConfig
from unipt.nn import CrossStreamSideNetwork, UniPTSideNetwork
from unipt.taps import ResolvedTaps, standalone


@dataclass(frozen=True)
class SideDims:
    """Sizes of a side network.

    Attributes:
        guide_width: width of what the guide is projected from (last tap, or the frozen embedding).
        side_width: ``d``: the configured ``side_width``, else the backbone (``width_base="input"``: guide)
            or output (``"output"``) width divided by ``reduction``.
        out_width: width of the output (default: the guide's, so the output can replace it).
    """

    guide_width: int
    side_width: int
    out_width: int


def side_dims(config: UniPTConfig, resolved: ResolvedTaps) -> SideDims:
    """The sizes ``config`` gives on taps of the ``resolved`` widths."""
    guide = resolved.final_width if resolved.input_kind == "single_query" else resolved.in_widths[-1]
    out = config.out_width if config.out_width is not None else guide
    if config.side_width is not None:
        return SideDims(guide, config.side_width, out)
    base = guide if config.width_base == "input" else out
    width = int(base / float(config.reduction or 1.0))
    if width < 1:
        raise ValueError(f"reduction={config.reduction} leaves no side width from {base}")
    return SideDims(guide, width, out)


def build_side_network(config: UniPTConfig, resolved: ResolvedTaps | None = None
                       ) -> UniPTSideNetwork | CrossStreamSideNetwork:
    """The side network ``config`` describes on ``resolved`` taps (default: the widths the config states,
    e.g. :meth:`UniPTConfig.for_paper`, for a side network without a backbone)."""
    resolved = resolved if resolved is not None else standalone(config)
    dims = side_dims(config, resolved)
    branch = dict(
        down_proj=config.down_proj, norm=config.norm, fusion_form=config.fusion, guide_residual=config.guide_residual,
        skip=config.skip, eps=config.eps, eps_mode=config.eps_mode, interaction=config.interaction == "guided",
        aggregation=config.aggregation, guided_pooling=config.guided_pooling, kernel=config.kernel,
        memory=config.memory, query_block=config.query_block,
    )
    if resolved.input_kind == "cross_stream":
        return CrossStreamSideNetwork(
            resolved.in_widths, resolved.decoder_widths, dims.side_width, dims.out_width,
            target_layers=config.target_layers, up_proj=config.up_proj, init=config.init, **branch,
        )
    return UniPTSideNetwork(
        resolved.in_widths, dims.side_width, dims.out_width, input_kind=resolved.input_kind,
        final_width=resolved.final_width, target_layers=config.target_layers, up_proj=config.up_proj,
        output_mode=config.output_mode, init=config.init, zero_init_up=config.zero_init_up, **branch,
    )
