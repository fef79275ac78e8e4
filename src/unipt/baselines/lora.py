"""LoRA (Hu et al., ICLR 2022) through Hugging Face PEFT, with automatic target selection.

``lora``: the query/value projections of a transformer (BERT ``query``/``value``, CLIP ``q_proj``/
``v_proj``, ...); for a CNN with no attention it falls back to every dense ``Conv2d`` (PEFT's conv LoRA).
``lora_conv``: always the convolutions. The chosen targets are written into ``variant`` so every report
shows exactly what was adapted. Gradients still flow through the whole backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from unipt.baselines._peft import PeftMethod, attention_targets, conv_targets, plain_convs


def _summarise(targets: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(targets[:limit])
    return shown if len(targets) <= limit else f"{shown}, ... ({len(targets)} modules)"


class LoRA(PeftMethod):
    """LoRA adapters ``W + (alpha / r) * B A`` injected by PEFT; only ``lora_`` weights train.

    Trainable count per Linear target: ``r * (in + out)``; per Conv2d target with kernel ``k``:
    ``r * in * k * k + out * r`` (A is a ``k x k`` conv to ``r`` channels, B a ``1 x 1`` conv).

    Args:
        backbone: the network; adapters are injected into it in place.
        r: rank. alpha: scaling numerator (``lora_alpha``). dropout: ``lora_dropout`` on the adapter input.
        target_modules: explicit PEFT targets; ``None`` chooses automatically (see module docstring).
        conv: target convolutions even if attention projections exist.
    """

    name = "lora"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        r: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        target_modules: Sequence[str] | None = None,
        conv: bool = False,
        backbone_train_mode: bool = True,
        probe_size: int = 224,
    ) -> None:
        import peft

        kind = "custom"
        if target_modules is None:
            found = None if conv else attention_targets(backbone)
            kind = "attention"
            if found is None:
                found, kind = conv_targets(backbone), "Conv2d"
            if not found:
                raise ValueError(f"no LoRA targets found in {type(backbone).__name__}; pass target_modules")
            target_modules = found
        targets = list(target_modules)
        if kind == "Conv2d":
            plain_convs(backbone, targets)  # e.g. EfficientNet's 1x1 "same"-padding convs -> nn.Conv2d
        config = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
        super().__init__(backbone, config, backbone_train_mode=backbone_train_mode, probe_size=probe_size)
        if conv:
            self.name = "lora_conv"
        self.targets = targets
        self.variant = f"LoRA (PEFT) r={r} alpha={alpha:g} on {kind}: {_summarise(targets)}"

    def adapted(self) -> list[str]:
        """Full names of the backbone modules that carry a LoRA adapter."""
        return self.adapted_modules("lora_A")


class LoRAConv(LoRA):
    """``lora_conv``: LoRA on every dense ``Conv2d`` of the backbone (CNN backbones)."""

    name = "lora_conv"

    def __init__(self, backbone: nn.Module, **options: object) -> None:
        options.setdefault("conv", True)
        super().__init__(backbone, **options)  # type: ignore[arg-type]
