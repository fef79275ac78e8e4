"""MDETR: modulated detection (ResNet / EfficientNet image body, RoBERTa text encoder, 6 + 6 layer
transformer of width 256, 100 queries, soft-token / box / contrastive-alignment heads).

* :class:`MDETR` / :class:`MDETRConfig`: the network, state-dict compatible with the released checkpoints;
* :func:`load_mdetr` / :func:`save_mdetr`: strict checkpoint loading with errors that name the keys;
* :class:`MDETRCriterion`: Hungarian matching, soft-token, box and contrastive-alignment losses;
* :class:`MDETRPreprocessor`: records -> padded images, tokens and token maps.

As a training backbone it is named ``mdetr:<checkpoint>``; UniPT's ``mdetr`` preset adapts it.
"""

from unipt.models.mdetr.config import MDETRConfig, ResNetBodyConfig, TextEncoderConfig
from unipt.models.mdetr.model import MDETR, MDETROutput
from unipt.models.mdetr.preprocess import MDETRPreprocessor
from unipt.models.mdetr.weights import CheckpointMismatchError, config_from_state_dict, load_mdetr, save_mdetr
from unipt.tasks.mdetr_heads import HeadOutputs, MDETRHeads
from unipt.tasks.mdetr_losses import MDETRCriterion, MDETRLossConfig

__all__ = [
    "MDETR",
    "CheckpointMismatchError",
    "HeadOutputs",
    "MDETRConfig",
    "MDETRCriterion",
    "MDETRHeads",
    "MDETRLossConfig",
    "MDETROutput",
    "MDETRPreprocessor",
    "ResNetBodyConfig",
    "TextEncoderConfig",
    "config_from_state_dict",
    "load_mdetr",
    "save_mdetr",
]
