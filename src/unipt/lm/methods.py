"""Every way to adapt a causal LM behind one interface, so training, evaluation, generation and the
benchmarks treat them alike.

    unipt   UniPTForCausalLM: frozen backbone (any precision) + causal side network
    frozen  the backbone as it is (zero-shot)
    lora    LoRA adapters from Hugging Face PEFT on the attention projections (backbone frozen)
    full    every weight trains

Each model takes ``(input_ids, attention_mask, labels, cache, side_cache, use_cache, logits_to_keep)``
and returns a :class:`~unipt.lm.model.UniPTCausalLMOutput`; the loss is the same
:func:`~unipt.lm.model.labelled_loss` for all (the head runs at labelled positions only).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from unipt.config import UniPTConfig
from unipt.files import atomic_write, atomic_write_json, read_safetensors
from unipt.lm.backbone import accepts, cache_argument, decoder_of, lm_head_of, position_ids_from_mask, returned_cache
from unipt.lm.model import UniPTCausalLMOutput, UniPTForCausalLM, labelled_loss
from unipt.lm.quantize import apply_backbone_precision, frozen_weight_bytes
from unipt.method import METHOD_CONFIG, METHOD_WEIGHTS

METHODS = ("unipt", "frozen", "lora", "full")


class PlainCausalLM(nn.Module):
    """A Hugging Face causal LM (frozen, fully trained, or with PEFT adapters injected in place)."""

    accepts_loss_kwargs = True
    main_input_name = "input_ids"

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    @property
    def backbone(self) -> nn.Module:  # generation reads the EOS / pad ids from here
        return self.model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        cache: Any = None,
        side_cache: Any = None,
        use_cache: bool = False,
        position_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> UniPTCausalLMOutput:
        if side_cache is not None:
            raise ValueError(f"the {self.method} method has no side network; side_cache must be None")
        decoder = decoder_of(self.model)
        kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": use_cache, "return_dict": True}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
            if position_ids is None and accepts(decoder, "position_ids"):
                position_ids = position_ids_from_mask(attention_mask, input_ids.shape[1])
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if cache is not None:
            kwargs[cache_argument(decoder)] = cache
        grad = torch.no_grad() if self.method == "frozen" else contextlib.nullcontext()
        with grad:
            out = decoder(**kwargs)
            states = out.last_hidden_state
            head = lm_head_of(self.model)
            loss = None if labels is None else labelled_loss(head, states, labels, num_items_in_batch)
            kept = states if logits_to_keep == 0 else states[:, -logits_to_keep:]
            logits = head(kept)
        return UniPTCausalLMOutput(loss=loss, logits=logits, cache=returned_cache(out) if use_cache else None)

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **options: Any) -> Any:
        from unipt.lm.generation import generate

        return generate(self, input_ids, attention_mask, **options)

    def save_pretrained(self, directory: str | os.PathLike[str], model_card: bool = False, **card: Any) -> None:
        """Write the trained weights (``method.safetensors``; none for ``frozen``) and the method's name
        (``method.json``), as every baseline's ``save_pretrained`` does (``model_card`` / ``card``: none here)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous().cpu() for k, v in trainable_state_dict(self).items()}
        atomic_write(out / METHOD_WEIGHTS, lambda path: save_file(state, str(path), metadata={"format": "pt"}))
        atomic_write_json(out / METHOD_CONFIG, {"method": self.method}, indent=2)

    def load_pretrained(self, directory: str | os.PathLike[str], fix: str | None = None) -> None:
        """Load what :meth:`save_pretrained` wrote into this (identically built) model."""
        src = Path(directory)
        if not (src / METHOD_WEIGHTS).is_file():
            raise FileNotFoundError(f"{src / METHOD_WEIGHTS} not found: {src} holds no saved {self.method} model")
        weights = read_safetensors(src / METHOD_WEIGHTS, fix or "save it again with save_pretrained")
        restore_trainable(self, weights, str(src))

    def frozen_weight_bytes(self) -> int:
        """Bytes of the weights that do not train."""
        return sum(p.numel() * p.element_size() for p in self.model.parameters() if not p.requires_grad) + sum(
            b.numel() * b.element_size() for b in self.model.buffers())


def build_causal_method(method: str, backbone: nn.Module, options: dict[str, Any] | None = None) -> nn.Module:
    """Wrap ``backbone`` (a Hugging Face causal LM; changed in place) for ``method``.

    Options: ``unipt`` takes :class:`UniPTConfig` fields; ``lora`` takes ``r`` (8), ``alpha`` (16),
    ``dropout`` (0.0), ``target_modules`` (default: the attention query/value projections); every
    method but ``full`` takes ``backbone_dtype`` / ``backbone_quantization`` for its frozen weights.
    """
    options = dict(options or {})
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} for a causal LM; use one of {list(METHODS)}")
    if method == "unipt":
        return UniPTForCausalLM(backbone, UniPTConfig(task_type="causal_lm", **options))
    for p in backbone.parameters():
        p.requires_grad_(method == "full")
    precision = {k: options.pop(k, None) for k in ("backbone_dtype", "backbone_quantization")}
    if method == "full" and any(precision.values()):
        raise ValueError("full fine-tuning trains every weight; it cannot use a cast or quantised frozen backbone")
    if method == "lora" and precision["backbone_quantization"] not in (None, "none"):
        raise ValueError("LoRA back-propagates through the backbone; Int8Linear and torch.ao layers have no "
                         "adapter support here (QLoRA needs bitsandbytes on CUDA). Use backbone_dtype instead.")
    apply_backbone_precision(backbone, precision["backbone_dtype"], precision["backbone_quantization"] or "none")
    if method == "lora":
        _inject_lora(backbone, options)
    elif options:
        raise ValueError(f"the {method} method takes no options, got {sorted(options)}")
    backbone.eval()
    return PlainCausalLM(backbone, method)


def _inject_lora(backbone: nn.Module, options: dict[str, Any]) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    from unipt.baselines._peft import attention_targets

    known = {"r", "alpha", "dropout", "target_modules"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown LoRA options {unknown}; known: {sorted(known)}")
    targets = options.get("target_modules") or attention_targets(backbone)
    if not targets:
        raise ValueError(f"found no attention projections in {type(backbone).__name__}; pass target_modules=[...]")
    config = LoraConfig(r=int(options.get("r", 8)), lora_alpha=int(options.get("alpha", 16)),
                        lora_dropout=float(options.get("dropout", 0.0)), target_modules=targets)
    inject_adapter_in_model(config, backbone)
    for name, p in backbone.named_parameters():
        p.requires_grad_("lora_" in name)


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights a method trains (what its checkpoints hold)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def restore_trainable(model: nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Load checkpoint ``weights`` into ``model``; every saved key must be one of its parameters."""
    own = dict(model.named_parameters())
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise ValueError(f"checkpoint {source} has weights this model does not: {unknown[:5]} (another run config?)")
    with torch.no_grad():
        for name, value in weights.items():
            own[name].copy_(value.to(own[name].dtype))


def weights_bytes(model: nn.Module) -> int:
    """Frozen-weight bytes of any method's model."""
    if hasattr(model, "frozen_weight_bytes"):
        return int(model.frozen_weight_bytes())
    return frozen_weight_bytes(model)
