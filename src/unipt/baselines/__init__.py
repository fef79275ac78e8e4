"""Baselines that UniPT is compared against, all sharing one interface.

Each is an ``nn.Module`` wrapping a backbone, ``forward(**backbone_inputs) -> AdaptedOutput``, with
``trainable_parameters()`` (``(trainable, total)`` counts), ``saved_state_dict()`` (exactly what a
checkpoint stores) and a ``variant`` string that reports print.
"""

from unipt.baselines.base import AdaptedMethod
from unipt.baselines.bitfit import BitFit
from unipt.baselines.frozen import FrozenProbe
from unipt.baselines.full import FullFineTuning
from unipt.baselines.ia3 import IA3
from unipt.baselines.lora import LoRA, LoRAConv
from unipt.baselines.lst import LadderSideTuning
from unipt.baselines.registry import build_method, list_methods, method_variant, register_method

__all__ = [
    "IA3",
    "AdaptedMethod",
    "BitFit",
    "FrozenProbe",
    "FullFineTuning",
    "LadderSideTuning",
    "LoRA",
    "LoRAConv",
    "build_method",
    "list_methods",
    "method_variant",
    "register_method",
]
