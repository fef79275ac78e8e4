"""Shared plumbing for methods that come from Hugging Face PEFT (LoRA, IA3).

We never re-implement a PEFT method: the adapter modules are injected into the backbone in place by
``peft.inject_adapter_in_model`` (the backbone keeps its type and call signature), PEFT marks only the
adapter weights trainable, and ``peft.get_peft_model_state_dict`` says what a checkpoint contains.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unipt.method import AdaptedMethod
from unipt.outputs import AdaptedOutput, token_output
from unipt.taps.features import backbone_features, final_feature_layer

# Attention projections that LoRA targets by default, most specific first; the first group whose every
# name exists among the backbone's linear layers wins.
ATTENTION_TARGETS: tuple[tuple[str, ...], ...] = (
    ("query", "value"),  # BERT / RoBERTa / HF ViT
    ("q_proj", "v_proj"),  # CLIP, BART, LLaMA-style
    ("q_lin", "v_lin"),  # DistilBERT
    ("q", "v"),  # T5
    ("c_attn",),  # GPT-2 (fused qkv Conv1D)
    ("qkv",),  # timm ViT (fused qkv)
)


def _is_linear_like(module: nn.Module) -> bool:
    """nn.Linear, or the transposed ``Conv1D`` that GPT-2 uses as a linear layer."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def attention_targets(backbone: nn.Module) -> list[str] | None:
    """Leaf names of the query/value projections of a transformer, or ``None`` if none are found."""
    leaves = {name.rsplit(".", 1)[-1] for name, m in backbone.named_modules() if _is_linear_like(m)}
    for group in ATTENTION_TARGETS:
        if all(leaf in leaves for leaf in group):
            return list(group)
    return None


def _is_pointwise(m: nn.Conv2d) -> bool:
    return tuple(m.kernel_size) == (1, 1) and tuple(m.stride) == (1, 1)


def conv_targets(backbone: nn.Module) -> list[str]:
    """Full names of every dense ``nn.Conv2d`` that LoRA can adapt.

    Depthwise/grouped convolutions are skipped on purpose: a low-rank update of a per-channel filter is
    not what LoRA-for-convs means, and PEFT limits them. PEFT builds LoRA's ``A``/``B`` convs with the
    target's own class and ``padding`` attribute, so ``Conv2d`` subclasses (e.g. EfficientNet's
    TF-style "same"-padding convs) are kept only when 1x1 with stride 1; :func:`plain_convs` then turns
    them into exactly equivalent plain ``nn.Conv2d`` before injection. Larger subclassed kernels (such
    an EfficientNet's 3x3 stem) are left out.
    """
    found = []
    for name, m in backbone.named_modules():
        if isinstance(m, nn.Conv2d) and m.groups == 1 and (type(m) is nn.Conv2d or _is_pointwise(m)):
            found.append(name)
    return found


def plain_convs(backbone: nn.Module, names: list[str]) -> int:
    """Replace the pointwise ``Conv2d`` subclasses among ``names`` by plain ``nn.Conv2d`` (same weights).

    A 1x1, stride-1 convolution needs no padding, so its output is unchanged. Returns how many were
    replaced.
    """
    modules = dict(backbone.named_modules())
    replaced = 0
    for name in names:
        m = modules[name]
        if type(m) is nn.Conv2d or not (isinstance(m, nn.Conv2d) and _is_pointwise(m)):
            continue
        plain = nn.Conv2d(m.in_channels, m.out_channels, 1, bias=m.bias is not None, dtype=m.weight.dtype,
                          device=m.weight.device)
        plain.load_state_dict({k: v for k, v in m.state_dict().items() if k in ("weight", "bias")})
        plain.weight.requires_grad_(m.weight.requires_grad)
        parent_name, _, leaf = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else backbone, leaf, plain)
        replaced += 1
    return replaced


class PeftMethod(AdaptedMethod):
    """A backbone with PEFT adapters injected; forward returns the final tokens ``[B, L, D]``."""

    def __init__(
        self, backbone: nn.Module, peft_config: Any, *, backbone_train_mode: bool = True, probe_size: int = 224
    ) -> None:
        import peft

        final_layer = final_feature_layer(backbone, probe_size)  # probed before any adapter exists
        # Fresh flags first: PEFT freezes every non-adapter parameter itself.
        peft.inject_adapter_in_model(peft_config, backbone)
        super().__init__(backbone, backbone_train_mode=backbone_train_mode)
        self.peft_config = peft_config
        self.final_layer = final_layer

    def adapted_modules(self, marker: str) -> list[str]:
        """Names of backbone submodules that received an adapter (their children include ``marker``)."""
        names = {
            n.split(f".{marker}", 1)[0] for n, _ in self.backbone.named_parameters() if f".{marker}" in n
        }
        return sorted(names)

    def forward(self, *args: object, **backbone_inputs: object) -> AdaptedOutput:
        features = backbone_features(self.backbone, backbone_inputs, self.final_layer, args)
        return token_output(features, backbone_inputs.get("attention_mask"))  # type: ignore[arg-type]

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """What ``PeftModel.save_pretrained`` would write: the adapter weights only."""
        import peft

        state = peft.get_peft_model_state_dict(self.backbone)
        return {k: v.detach() for k, v in state.items()}
