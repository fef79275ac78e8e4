"""(IA)^3 (Liu et al., NeurIPS 2022) through Hugging Face PEFT: learned per-channel rescaling vectors."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from unipt.baselines._peft import PeftMethod


def _peft_knows(backbone: nn.Module) -> bool:
    """Whether PEFT has default IA3 targets for this Hugging Face architecture."""
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as mapping

    model_type = getattr(getattr(backbone, "config", None), "model_type", None)
    return model_type in mapping


class IA3(PeftMethod):
    """IA3 vectors injected by PEFT; only ``ia3_l`` vectors train (they start at 1, so step 0 = backbone).

    Trainable count: ``out_features`` per attention target (key/value scaling) plus ``in_features`` per
    feed-forward target. Targets default to PEFT's table for the architecture (BERT: ``key``, ``value``,
    ``output.dense`` as feed-forward); other backbones must pass ``target_modules`` and
    ``feedforward_modules``.
    """

    name = "ia3"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        target_modules: Sequence[str] | None = None,
        feedforward_modules: Sequence[str] | None = None,
        backbone_train_mode: bool = True,
        probe_size: int = 224,
    ) -> None:
        import peft

        if target_modules is None and not _peft_knows(backbone):
            raise ValueError(
                f"PEFT has no default IA3 targets for {type(backbone).__name__}; "
                "pass target_modules and feedforward_modules"
            )
        config = peft.IA3Config(
            target_modules=list(target_modules) if target_modules is not None else None,
            feedforward_modules=list(feedforward_modules) if feedforward_modules is not None else None,
        )
        super().__init__(backbone, config, backbone_train_mode=backbone_train_mode, probe_size=probe_size)
        adapted = self.adapted()
        self.variant = f"(IA)^3 (PEFT) on {len(adapted)} modules ({', '.join(sorted(_leaves(adapted)))})"

    def adapted(self) -> list[str]:
        """Full names of the backbone modules that carry an IA3 vector."""
        return self.adapted_modules("ia3_l")


def _leaves(names: Sequence[str], limit: int = 6) -> set[str]:
    """Distinct trailing name parts (``encoder.layer.0.attention.self.key`` -> ``self.key``); only the last
    part when that gives more than ``limit`` (CNN blocks: ``_blocks.3._expand_conv`` -> ``_expand_conv``)."""
    two = {".".join(n.split(".")[-2:]) for n in names}
    return two if len(two) <= limit else {n.rsplit(".", 1)[-1] for n in names}
