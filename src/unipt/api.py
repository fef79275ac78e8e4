"""``unipt.get_unipt_model``: one entry point for every backbone. It sits above both kinds of model, so
:mod:`unipt.model` (task-head features) never imports :mod:`unipt.lm` (decoder language models)."""

from __future__ import annotations

import torch
from torch import nn

from unipt.config import UniPTConfig
from unipt.model import UniPTModel


def get_unipt_model(
    backbone: nn.Module,
    config: UniPTConfig | None = None,
    example_inputs: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Freeze ``backbone`` and attach a UniPT side network (widths discovered from the backbone).

    Args:
        backbone: any ``nn.Module``: a Hugging Face model, a torchvision/timm CNN, your own network.
        config: :class:`UniPTConfig` (default: the ``auto`` preset with automatic taps); it is not changed,
            so the same config can be used on other backbones.
        example_inputs: one batch of the backbone's keyword inputs used to discover the tap shapes;
            by default a dummy batch is made from the backbone's config.

    Returns a :class:`~unipt.model.UniPTModel`; for a Hugging Face causal LM (``*ForCausalLM``) with
    ``task_type`` unset or ``"causal_lm"``, a :class:`unipt.lm.UniPTForCausalLM` (causal side network
    feeding the frozen LM head).
    """
    task = config.task_type if config is not None else None
    if task == "causal_lm" or task is None and _is_causal_lm(backbone):
        from unipt.lm.model import UniPTForCausalLM  # imported on use: `import unipt` stays light

        return UniPTForCausalLM(backbone, config)
    return UniPTModel(backbone, config or UniPTConfig(), example_inputs)


def _is_causal_lm(backbone: nn.Module) -> bool:
    from unipt.lm.backbone import is_causal_lm

    return is_causal_lm(backbone)
