"""The method itself: parallel interaction, confidence aggregation, guided pooling, side networks."""

from unipt.config import UniPTConfig
from unipt.nn.aggregation import ConfidenceAggregation
from unipt.nn.branch import GuidedBranch
from unipt.nn.cross_stream import CrossStreamSideNetwork
from unipt.nn.interaction import ParallelInteraction
from unipt.nn.pooling import GuidedWindowPooling
from unipt.nn.side import UniPTSideNetwork

__all__ = [
    "ConfidenceAggregation",
    "CrossStreamSideNetwork",
    "GuidedBranch",
    "GuidedWindowPooling",
    "ParallelInteraction",
    "UniPTSideNetwork",
    "build_side_network",
]


def build_side_network(config: UniPTConfig) -> UniPTSideNetwork | CrossStreamSideNetwork:
    """The side network for ``config.input_kind`` (token sequences when it is not set)."""
    if config.input_kind is None:
        config.input_kind = "sequence"
    if config.input_kind == "cross_stream":
        return CrossStreamSideNetwork(config)
    return UniPTSideNetwork(config)
