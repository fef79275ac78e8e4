"""Generation for :class:`~unipt.lm.model.UniPTForCausalLM`: greedy or sampled, with two caches.

Each step feeds only the new token: the backbone extends its KV cache, the side network extends its
:class:`~unipt.nn.causal.SideCache` (the down-projected keys of every tapped layer and the running
sums of the causal pooling), so a token costs the backbone's step plus ``O(t * d)`` per tapped layer.
``use_cache=False`` recomputes the whole sequence at every step instead (the reference the tests
compare against). Batches must be left-padded (``tokenizer.padding_side = "left"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class GenerationResult:
    """``sequences`` ``[B, L + T]`` (prompt + new tokens, ``pad`` after EOS), ``new_tokens`` ``[B, T]``,
    and with ``output_scores`` the raw next-token logits of every step (``T`` tensors ``[B, V]``)."""

    sequences: torch.Tensor
    new_tokens: torch.Tensor
    scores: list[torch.Tensor] | None = None


@torch.no_grad()
def generate(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    max_new_tokens: int = 32,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    output_scores: bool = False,
) -> GenerationResult:
    """Continue ``input_ids`` ``[B, L]`` by up to ``max_new_tokens`` tokens.

    Args:
        model: a :class:`UniPTForCausalLM`.
        attention_mask: ``[B, L]`` (left padding only); ``None`` = every token real.
        do_sample: sample from the (temperature / top-k / top-p filtered) distribution, else argmax.
        eos_token_id: stop a sequence at this token (or any of a list); default: the backbone's.
        pad_token_id: written after a sequence has ended; default: the backbone's, else the EOS token.
        use_cache: extend the KV and side caches (fast) or recompute everything each step (reference).
        generator: a ``torch.Generator`` for reproducible sampling.
        output_scores: also return each step's raw logits ``[B, V]`` (before filtering).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use do_sample=False for greedy), got {temperature}")
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.device).long()
    _require_left_padding(mask)
    eos = _as_list(eos_token_id if eos_token_id is not None else _default(model, "eos_token_id"))
    pad = pad_token_id if pad_token_id is not None else _default(model, "pad_token_id")
    pad = pad if pad is not None else (eos[0] if eos else 0)
    warpers = _warpers(do_sample, temperature, top_k, top_p)
    was_training = model.training
    model.eval()
    try:
        sequences, scores = input_ids, []
        running = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        out = model(input_ids, attention_mask=mask, use_cache=use_cache, logits_to_keep=1)
        for step in range(max_new_tokens):
            logits = out.logits[:, -1].float()
            if output_scores:
                scores.append(logits)
            token = _choose(warpers(sequences, logits.clone()), do_sample, generator)
            token = torch.where(running, token, torch.full_like(token, pad))
            sequences = torch.cat([sequences, token[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            if eos:
                running &= ~torch.isin(token, torch.tensor(eos, device=token.device))
            if not running.any() or step + 1 == max_new_tokens:
                break
            if use_cache:
                out = model(token[:, None], attention_mask=mask, cache=out.cache, side_cache=out.side_cache,
                            use_cache=True, logits_to_keep=1)
            else:
                out = model(sequences, attention_mask=mask, logits_to_keep=1)
    finally:
        model.train(was_training)
    return GenerationResult(sequences, sequences[:, input_ids.shape[1]:], scores if output_scores else None)


def _require_left_padding(mask: torch.Tensor) -> None:
    # A 0 after a 1 in a row means right padding: new tokens would follow the padding.
    started = mask.cumsum(-1) > 0
    if bool((started & (mask == 0)).any()):
        raise ValueError(
            "generate needs left-padded prompts (padding before the text); set tokenizer.padding_side = 'left'"
        )


def _default(model: Any, name: str) -> Any:
    backbone = model.backbone
    for source in (getattr(backbone, "generation_config", None), getattr(backbone, "config", None)):
        value = getattr(source, name, None)
        if value is not None:
            return value
    return None


def _as_list(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def _warpers(do_sample: bool, temperature: float, top_k: int | None, top_p: float | None) -> Any:
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList()
    if do_sample:
        if temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(temperature))
        if top_k:
            warpers.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p))
    return warpers


def _choose(logits: torch.Tensor, do_sample: bool, generator: torch.Generator | None) -> torch.Tensor:
    if not do_sample:
        return logits.argmax(-1)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
