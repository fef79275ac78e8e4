"""UniPTForCausalLM: a frozen decoder LM whose frozen LM head reads the final state plus a causal side output.

    logits = head(H_N + U(G + P(M)))        H_N = the decoder's final state, AFTER its final norm

**Where the side output goes: after the final norm, before the head.** The decoder's last hidden
state ``H_N`` is ``norm(h_N)`` (Hugging Face returns it normalised in every family), and the side
output is added to it. Adding it *before* the norm (to the raw residual stream ``h_N``) was rejected
because that stream's scale is large and uneven in trained LLMs: in SmolLM2-135M its RMS is ~37 at a
typical position and ~214 at the first one (an attention sink). The norm divides whatever is added
by that RMS, so a pre-norm side output would need outputs tens of times larger and would get a
position-dependent effective learning rate, and its component along ``h_N`` is projected away.
After the norm the head's input has an RMS near 2 at every position, the side output changes the
logits linearly (``W_head U``), and it is the same "residual on the frozen output" as
``output_mode="residual"`` for encoders. U's last Linear starts at zero, so the untrained model
returns the backbone's logits exactly.

The backbone runs under ``torch.no_grad()`` (no autograd graph, no saved activations); only the side
network has ``requires_grad``. Gradients reach it through the frozen head (a matrix product with the
head's weight, which is a parameter, not an activation).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.utils import ModelOutput

from unipt.config import UniPTConfig
from unipt.fingerprint import architecture_fingerprint
from unipt.lm.backbone import (
    accepts,
    cache_argument,
    decoder_of,
    is_causal_lm,
    lm_head_of,
    position_ids_from_mask,
    returned_cache,
    sampled_fingerprint,
)
from unipt.lm.quantize import DTYPES, apply_backbone_precision, frozen_weight_bytes
from unipt.lm.side import build_causal_side_network, causal_side_width
from unipt.model import require_compiler
from unipt.nn.causal import SideCache
from unipt.pretrained import (
    FORMAT_VERSION,
    GOOD_COPY,
    check_backbone,
    migrate_side_state,
    read_meta,
    read_side_state,
    write_pretrained,
)

IGNORE_INDEX = -100


@dataclass
class UniPTCausalLMOutput(ModelOutput):
    """A Hugging Face-style causal-LM output (``out.loss``, ``out["loss"]``, ``out[0]``) plus the side state.

    Attributes:
        loss: scalar next-token cross-entropy (with ``labels``).
        logits: ``[B, L, V]`` (or the last ``logits_to_keep`` positions).
        cache: the backbone's KV cache (with ``use_cache=True``; transformers' own name for it since 5.x,
            also readable as ``past_key_values``).
        side_cache: the side network's incremental state (with ``use_cache=True``).
        layer_weights: ``[B, L, n]`` the per-position softmax confidence over the tapped layers.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: Any = None
    side_cache: SideCache | None = None
    layer_weights: torch.Tensor | None = None

    @property
    def past_key_values(self) -> Any:
        return self.cache


def labelled_loss(head: nn.Module, states: torch.Tensor, labels: torch.Tensor,
                  num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross-entropy of ``head(states)`` ``[B, L, D]`` against ``labels`` ``[B, L]`` (shifted).

    The head runs only at positions whose next label is not ``-100``, so a prompt/response batch pays
    for a few response tokens instead of ``B * L`` vocabulary rows. Equal to Hugging Face's causal-LM
    loss (float32 mean over labelled targets); divided by ``num_items_in_batch`` instead when given
    (``transformers.Trainer`` with gradient accumulation); ``0`` (still in the graph) when nothing is labelled.
    """
    targets = labels[:, 1:].to(states.device)
    chosen = targets != IGNORE_INDEX
    logits = head(states[:, :-1][chosen]).float()  # [K, V]
    total = nn.functional.cross_entropy(logits, targets[chosen], reduction="sum")
    if num_items_in_batch is not None:
        return total / num_items_in_batch
    return total / chosen.sum().clamp(min=1)


def causal_lm_config(config: UniPTConfig | None) -> UniPTConfig:
    """``config`` for a causal LM, as a new, checked object (the caller's is never changed)."""
    if config is None:
        return UniPTConfig(task_type="causal_lm")
    if config.task_type not in (None, "causal_lm"):
        raise ValueError(f"UniPTForCausalLM needs task_type='causal_lm', got {config.task_type!r}")
    if config.task_type is None:  # auto-picked: the preset's "replace" output never applies to an LM
        return dataclasses.replace(config, output_mode=None, task_type="causal_lm")  # checked on construction
    return dataclasses.replace(config)


class UniPTForCausalLM(nn.Module):
    """Frozen causal LM + causal UniPT side network; ``forward(input_ids, attention_mask, labels)``.

    Like PEFT's wrappers it takes the backbone over: its parameters are frozen, and ``backbone_dtype`` /
    ``backbone_quantization`` convert it in place (pass a copy to keep the original).
    """

    accepts_loss_kwargs = True  # transformers.Trainer passes num_items_in_batch (exact loss over accumulation)
    main_input_name = "input_ids"

    def __init__(self, backbone: nn.Module, config: UniPTConfig | None = None):
        super().__init__()
        if not is_causal_lm(backbone):
            raise ValueError(
                f"{type(backbone).__name__} is not a Hugging Face causal LM; UniPTForCausalLM wraps *ForCausalLM "
                "models (load one with unipt.lm.load_causal_lm or AutoModelForCausalLM)"
            )
        config = causal_lm_config(config)
        # of the weights as given, before any cast or quantisation (what from_pretrained is handed again)
        self.backbone_fingerprint = {**sampled_fingerprint(backbone), **architecture_fingerprint(backbone)}
        for p in backbone.parameters():
            p.requires_grad_(False)
        apply_backbone_precision(backbone, config.backbone_dtype, config.backbone_quantization)
        backbone.train(config.keep_backbone_dropout)
        self.backbone = backbone
        self.config = config
        self.widths = self._discover_widths()  # what the decoder determined; self.config is what was asked for
        self.side = build_causal_side_network(config, self.widths).to(DTYPES[config.side_dtype])
        if config.compile:
            require_compiler()
            self.side.compile()  # in place: parameter names and saved files stay the same

    # ------------------------------------------------------------------------------- parts
    @property
    def decoder(self) -> nn.Module:
        return decoder_of(self.backbone)

    @property
    def lm_head(self) -> nn.Module:
        return lm_head_of(self.backbone)

    def train(self, mode: bool = True) -> UniPTForCausalLM:
        """Train the side network; the backbone stays in eval mode unless ``keep_backbone_dropout``."""
        super().train(mode)
        self.backbone.train(mode and self.config.keep_backbone_dropout)
        return self

    @torch.no_grad()
    def _discover_widths(self) -> list[int]:
        """The widths of the decoder's hidden states (embeddings first); checks the head is read directly."""
        device = next(self.backbone.parameters()).device
        ids = torch.arange(4, device=device)[None] % max(1, getattr(self.backbone.config, "vocab_size", 4))
        out = self.backbone(input_ids=ids, output_hidden_states=True, return_dict=True)
        widths = [h.shape[-1] for h in out.hidden_states]
        if self.config.in_widths is not None and list(self.config.in_widths) != widths:
            raise ValueError(
                f"UniPTConfig.in_widths={self.config.in_widths} does not match this decoder ({widths}); drop it "
                "to let UniPTForCausalLM discover it, or load the side network onto the backbone it was trained on"
            )
        direct = self.lm_head(out.hidden_states[-1])
        if direct.shape != out.logits.shape or not torch.allclose(direct.float(), out.logits.float(), atol=1e-4):
            raise ValueError(
                f"{type(self.backbone).__name__} post-processes its logits (e.g. soft-capping or scaling) after the LM "
                "head; UniPTForCausalLM feeds the head directly and does not support such models yet"
            )
        return widths

    # ------------------------------------------------------------------------------- running
    @torch.no_grad()
    def backbone_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool = False,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[tuple[torch.Tensor, ...], Any]:
        """The frozen decoder's hidden states ``[B, s, D]`` each (final one normalised) and its KV cache."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "output_hidden_states": True, "use_cache": use_cache,
                                  "return_dict": True}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
            if position_ids is None and accepts(self.decoder, "position_ids"):
                position_ids = position_ids_from_mask(attention_mask, input_ids.shape[1])
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if cache is not None:
            kwargs[cache_argument(self.decoder)] = cache
        out = self.decoder(**kwargs)
        return out.hidden_states, (returned_cache(out) if use_cache else None)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        cache: Any = None,
        side_cache: SideCache | None = None,
        use_cache: bool = False,
        position_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> UniPTCausalLMOutput:
        """Logits (and a loss with ``labels``) for ``input_ids`` ``[B, s]``.

        Args:
            input_ids: the new tokens (all of them, or the ones after the caches).
            attention_mask: ``[B, past + s]`` 1 for real tokens (``None``: all real).
            labels: ``[B, s]`` next-token targets aligned with ``input_ids`` (shifted inside, as in Hugging
                Face); ``-100`` positions are ignored (e.g. the prompt, padding).
            cache: the backbone's KV cache from the previous output (``out.cache``), with ``side_cache``.
            side_cache: the side network's cache from the previous output (``out.side_cache``); pass both
                caches or neither.
            use_cache: return both caches for the next step.
            logits_to_keep: ``0`` = logits at every position, ``k`` = only the last ``k`` (the loss never
                needs them: it is computed at the labelled positions only).
            num_items_in_batch: divide the summed loss by this (``transformers.Trainer`` passes it).
        """
        self._check_inputs(input_ids, attention_mask, labels, cache, side_cache)
        s = input_ids.shape[1]
        hidden, new_cache = self.backbone_states(input_ids, attention_mask, cache, use_cache, position_ids)
        new_mask = None if attention_mask is None else attention_mask[:, -s:]
        side_out, alpha, new_side = self.side(list(hidden), new_mask, side_cache, use_cache)
        adapted = self.adapt_final(hidden[-1], side_out)
        loss = None if labels is None else self.loss(adapted, labels, num_items_in_batch)
        kept = adapted if logits_to_keep == 0 else adapted[:, -logits_to_keep:]
        return UniPTCausalLMOutput(loss=loss, logits=self.lm_head(kept), cache=new_cache,
                                   side_cache=new_side, layer_weights=alpha)

    def adapt_final(self, final: torch.Tensor, side_out: torch.Tensor) -> torch.Tensor:
        """``H_N + side`` in the wider of the two dtypes, returned in the head's dtype."""
        wide = torch.promote_types(final.dtype, side_out.dtype)
        head_dtype = self.lm_head.weight.dtype
        return (final.to(wide) + side_out.to(wide)).to(head_dtype)

    def loss(self, adapted: torch.Tensor, labels: torch.Tensor,
             num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        """Next-token cross-entropy at the labelled positions only (see :func:`labelled_loss`)."""
        return labelled_loss(self.lm_head, adapted, labels, num_items_in_batch)

    def _check_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      labels: torch.Tensor | None, past: Any, side_cache: SideCache | None) -> None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [B, L] token ids, got shape {tuple(input_ids.shape)}")
        if (past is None) != (side_cache is None):
            raise ValueError("pass cache and side_cache together (both from the previous output), or neither")
        past_len = 0 if side_cache is None else side_cache.length
        expected = (input_ids.shape[0], past_len + input_ids.shape[1])
        if attention_mask is not None and tuple(attention_mask.shape) != expected:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}; it must cover the cached and the new tokens: "
                f"[{input_ids.shape[0]}, {past_len} + {input_ids.shape[1]}]"
            )
        if labels is not None and labels.shape != input_ids.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} != input_ids shape {tuple(input_ids.shape)}")

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **options: Any) -> Any:
        """Greedy or sampled generation with both caches; see :func:`unipt.lm.generation.generate`."""
        from unipt.lm.generation import generate

        return generate(self, input_ids, attention_mask, **options)

    # ------------------------------------------------------------------------------- parameters
    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts (quantised weights counted as their element numbers)."""
        total = sum(p.numel() for p in self.parameters()) + sum(
            b.numel() for n, b in self.backbone.named_buffers() if n.endswith("weight_int8"))
        return sum(p.numel() for p in self.parameters() if p.requires_grad), total

    def print_trainable_parameters(self) -> None:
        trainable, total = self.trainable_parameters()
        print(f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}")

    def frozen_weight_bytes(self) -> int:
        """Bytes the frozen backbone's weights occupy in their current precision."""
        return frozen_weight_bytes(self.backbone)

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.side.state_dict().items()}

    @property
    def variant(self) -> str:
        cfg = self.config
        precision = cfg.backbone_quantization
        if precision == "none":
            precision = cfg.backbone_dtype or "as loaded"
        width = causal_side_width(cfg, self.widths)
        return f"UniPT causal LM (side width {width}, backbone {precision}, side {cfg.side_dtype})"

    # ------------------------------------------------------------------------------- save / load
    def save_pretrained(self, directory: str | os.PathLike[str], model_card: bool = True, **card: Any) -> None:
        """Write ONLY the side network (safetensors) and the config (JSON), each atomically, and a model
        card ``README.md`` (``model_card=False``: none; ``card``: see :func:`unipt.model_card.model_facts`)."""
        out = Path(directory)
        write_pretrained(out, self.side.state_dict(), {"config": self.config.to_dict(),
                                                       "backbone": self.backbone_fingerprint})
        if model_card:
            from unipt.model_card import model_facts, write_card

            snippet = "\n".join([
                "from unipt.lm import UniPTForCausalLM, load_causal_lm",
                "",
                "lm = load_causal_lm(...)  # the backbone this was trained on, in the precision it was loaded in",
                'model = UniPTForCausalLM.from_pretrained(lm.model, "path/to/this/folder")',
                "out = model(input_ids, attention_mask)   # out.logits [B, L, V]; model.generate(...)",
            ])
            write_card(out, dataclasses.replace(model_facts(self, **card), loading_snippet=snippet))

    @classmethod
    def from_pretrained(cls, backbone: nn.Module, directory: str | os.PathLike[str],
                        is_trainable: bool = False) -> UniPTForCausalLM:
        """Rebuild a saved side network on ``backbone`` (given in the precision it was loaded in before
        training; the saved config re-applies ``backbone_dtype`` / ``backbone_quantization``)."""
        src = Path(directory)
        meta = read_meta(src)
        if meta.get("config", {}).get("task_type") != "causal_lm":
            raise ValueError(f"{src} holds a side network for task heads, not a causal LM; load it with "
                             "unipt.UniPTModel.from_pretrained(backbone, path)")
        # of the weights as given (before the saved config casts or quantises them), as at save time
        check_backbone(meta, backbone, sampled_fingerprint(backbone), src)
        weights = read_side_state(src)
        model = cls(backbone, UniPTConfig.from_dict(meta["config"]))
        model.load_side_state(weights, meta.get("format_version", 1))
        model.side.requires_grad_(is_trainable)
        return model

    def load_pretrained(self, directory: str | os.PathLike[str], fix: str | None = None) -> None:
        """Load the side network :meth:`save_pretrained` wrote into this (identically configured) model;
        ``fix`` says where a good copy of a damaged file comes from."""
        meta = read_meta(directory)
        self.load_side_state(read_side_state(directory, fix or GOOD_COPY), meta.get("format_version", 1))

    def load_side_state(self, state: dict[str, torch.Tensor], format_version: int = FORMAT_VERSION) -> None:
        """Load side-network tensors saved in ``format_version`` (1: the numbered sub-layers of the
        first causal side networks, converted)."""
        cfg = self.config
        forms = {"down_proj": cfg.down_proj, "fusion": cfg.fusion, "up_proj": cfg.up_proj,
                 "input_kind": cfg.input_kind, "task_type": "causal_lm"}
        self.side.load_state_dict(migrate_side_state(state, format_version, forms))
