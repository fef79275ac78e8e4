"""The method itself: parallel interaction, confidence aggregation, guided pooling, side networks.

Every module here takes plain arguments (widths, forms, eps) and can be built and tested without a
:class:`~unipt.config.UniPTConfig`; :func:`unipt.builder.build_side_network` maps a config onto them.
"""

from unipt.nn.aggregation import ConfidenceAggregation
from unipt.nn.branch import GuidedBranch, select_targets
from unipt.nn.cross_stream import CrossStreamSideNetwork
from unipt.nn.interaction import ParallelInteraction
from unipt.nn.layers import MLPFusion, Projection, TokenBatchNorm
from unipt.nn.pooling import GuidedWindowPooling
from unipt.nn.side import UniPTSideNetwork

__all__ = [
    "ConfidenceAggregation",
    "CrossStreamSideNetwork",
    "GuidedBranch",
    "GuidedWindowPooling",
    "MLPFusion",
    "ParallelInteraction",
    "Projection",
    "TokenBatchNorm",
    "UniPTSideNetwork",
    "select_targets",
]
