"""unipt: Universal Parallel Tuning for frozen backbones.

The public API is deliberately tiny, PEFT-style::

    import unipt
    model = unipt.get_unipt_model(backbone, unipt.UniPTConfig(preset="auto"))
    model.print_trainable_parameters()
    out = model(**inputs)            # backbone runs with no autograd graph
    model.save_pretrained("run/")    # side weights (safetensors) + config (JSON)
    again = unipt.UniPTModel.from_pretrained(backbone, "run/")
"""

from unipt.api import get_unipt_model
from unipt.config import PRESETS, UniPTConfig, list_presets
from unipt.model import UniPTModel
from unipt.outputs import AdaptedOutput
from unipt.version import __version__

__all__ = [
    "PRESETS",
    "AdaptedOutput",
    "UniPTConfig",
    "UniPTModel",
    "__version__",
    "get_unipt_model",
    "list_presets",
]
