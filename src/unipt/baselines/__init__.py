"""Baselines that UniPT is compared against, all implementing :class:`unipt.method.AdaptedMethod`.

Each wraps a backbone, ``forward(**backbone_inputs) -> AdaptedOutput``, with ``trainable_parameters()``
(``(trainable, total)`` counts), ``saved_state_dict()`` (exactly what a checkpoint stores) and a
``variant`` string that reports print. Build them by name with :func:`unipt.registry.build_method`.
"""

from unipt.baselines.bitfit import BitFit
from unipt.baselines.frozen import FrozenProbe
from unipt.baselines.full import FullFineTuning
from unipt.baselines.ia3 import IA3
from unipt.baselines.lora import LoRA, LoRAConv
from unipt.baselines.lst import LadderSideTuning

__all__ = [
    "IA3",
    "BitFit",
    "FrozenProbe",
    "FullFineTuning",
    "LadderSideTuning",
    "LoRA",
    "LoRAConv",
]
