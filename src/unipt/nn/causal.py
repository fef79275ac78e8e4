"""The causal side network for decoder language models: nothing at position t reads a later token.

Reading order (hidden states ``H_0 .. H_N`` of a decoder, each ``[B, L, D]``, guide = ``H_N``)::

    G     = down_N(H_N)                                    guide, [B, L, d]
    F_i   = down_i(H_i)                                    every target layer, [B, L, d]
    F'_i  = A_i F_i + F_i,  A_i = L1row(relu(G F_i^T * K))  K[b, q, j] = pad[b, j] AND j <= q
    g     = running mean of G   over real positions <= q   [B, L, d]   (count clamped at 1)
    t_i   = running mean of F_i over real positions <= q   [B, L, d]
    a_i   = softmax_i(gate(g * t_i))                       ONE shared Linear(d, 1), per (b, q)
    M     = sum_i a_i F'_i                                 [B, L, d]
    out   = U(G + P(M))                                    [B, L, D], U's last Linear starts at zero

Every step is either per token (projections, LayerNorm, gate, P, U) or reads positions ``<= q`` only
(the interaction's causal key mask, prefix sums), so the output at ``q`` is a function of tokens
``<= q``. That is also what makes generation incremental: :class:`SideCache` keeps, for every target
layer, the down-projected keys seen so far plus the running sums, so one new token costs
``O(t * d)`` per layer on top of the backbone's own step.

Execution: a whole sequence (training, evaluation, the prompt of a generation) goes through the fused
kernel (:func:`unipt.nn.fused.guided_mix` with ``causal=True``: query blocks, maps recomputed in
backward, memory linear in length) unless ``kernel="reference"``; the tokens appended to a
:class:`SideCache` go through the plain modules (one query row per layer, nothing to save).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unipt.nn.aggregation import ConfidenceAggregation
from unipt.nn.branch import select_targets
from unipt.nn.fused import LayerFeed, MixOptions, guided_mix
from unipt.nn.interaction import ParallelInteraction
from unipt.nn.layers import down_projection, fusion, init_weights, up_projection, zero_last_linear


@dataclass
class SideCache:
    """What the side network keeps between generation steps (beside the backbone's KV cache).

    Attributes:
        keys: per target layer, the down-projected layer ``F_i`` of every position so far ``[B, t, d]``.
        key_mask: ``[B, t]`` 1 for real (non-padding) positions so far.
        guide_sum: ``[B, d]`` float32 sum of ``G`` over real positions so far.
        layer_sum: ``[n, B, d]`` float32 sums of every ``F_i`` over real positions so far.
        count: ``[B, 1]`` float32 number of real positions so far.
    """

    keys: list[torch.Tensor]
    key_mask: torch.Tensor
    guide_sum: torch.Tensor
    layer_sum: torch.Tensor
    count: torch.Tensor

    @property
    def length(self) -> int:
        return self.key_mask.shape[1]

    def nbytes(self) -> int:
        """Bytes held: ``n * B * t * d`` keys plus ``O(n * B * d)`` sums (linear in the length ``t``)."""
        tensors = [*self.keys, self.key_mask, self.guide_sum, self.layer_sum, self.count]
        return sum(t.numel() * t.element_size() for t in tensors)


class CausalSideNetwork(nn.Module):
    """UniPT's side network with causal interaction and per-position confidence aggregation.

    Sub-layers: ``guide_proj`` and ``down_projs`` (:class:`~unipt.nn.layers.Projection`), ``interaction``,
    ``aggregation`` (its ``gate``), ``fusion`` (P) and ``up_proj`` (U, its Linear starts at zero).

    Args:
        in_widths: widths of the decoder's hidden states ``H_0 .. H_N``, guide (the final state) last.
        side_width: ``d``.
        target_layers: which hidden states the guide re-weights (``None``: all but the guide).
        down_proj: form of the down-projections (see :mod:`unipt.nn.layers`).
        norm: ``layer`` only (BatchNorm would pool over later tokens).
        fusion_form: form of P.
        up_proj: form of U.
        eps: the interaction's L1 normaliser epsilon.
        eps_mode: ``add`` or ``clamp``.
        interaction: ``False`` skips the guided re-weighting (ablation).
        aggregation: ``confidence`` or ``uniform``.
        kernel: ``fused`` or ``reference``.
        memory: ``default`` or ``min``.
        query_block: query rows per block in the fused kernel.
        init: ``default``, ``bert`` or ``xavier``.
    """

    def __init__(
        self,
        in_widths: list[int],
        side_width: int,
        *,
        target_layers: list[int] | None = None,
        down_proj: str = "linear_norm",
        norm: str = "layer",
        fusion_form: str = "linear_norm",
        up_proj: str = "relu_linear",
        eps: float = 1e-6,
        eps_mode: str = "add",
        interaction: bool = True,
        aggregation: str = "confidence",
        kernel: str = "fused",
        memory: str = "default",
        query_block: int | None = None,
        init: str = "default",
    ):
        super().__init__()
        if norm == "batch":
            raise ValueError("a causal side network cannot use BatchNorm (it pools over later tokens); "
                             "use norm='layer'")
        if memory == "min" and kernel != "fused":
            raise ValueError("memory='min' recomputes inside the fused kernel; set kernel='fused' (the default)")
        self.in_widths = list(in_widths)
        self.kernel, self.memory = kernel, memory
        d = side_width
        self.targets = select_targets(target_layers, len(in_widths))
        self.guide_proj = down_projection(down_proj, in_widths[-1], d, norm)
        self.down_projs = nn.ModuleList(down_projection(down_proj, in_widths[i], d, norm) for i in self.targets)
        self.interaction = ParallelInteraction(eps, eps_mode, "identity", enabled=interaction)
        self.aggregation = ConfidenceAggregation(d, aggregation)
        self.fusion = fusion(fusion_form, d, norm)
        self.up_proj = up_projection(up_proj, d, in_widths[-1])
        self.mix_options = MixOptions(skip="identity", eps=eps, eps_mode=eps_mode, interaction=interaction,
                                      uniform=aggregation == "uniform", causal=True, block=query_block)
        init_weights(self, init)
        zero_last_linear(self.up_proj)  # the untrained model is exactly the frozen backbone

    def forward(
        self,
        hidden: list[torch.Tensor],
        mask: torch.Tensor | None = None,
        cache: SideCache | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, SideCache | None]:
        """Side output for ``s`` new positions (all of them, or the ones after ``cache``).

        Args:
            hidden: the backbone's hidden states for the new positions, ``[B, s, D_i]`` each, guide last.
            mask: ``[B, s]`` 1 for real tokens of the new positions (``None``: all real).
            cache: the state after the previous positions, or ``None`` to start at position 0.
            use_cache: return the state after these positions.

        Returns:
            ``out`` ``[B, s, D]`` (to add to the frozen final state), layer weights ``[B, s, n]`` and the
            new :class:`SideCache` (``None`` unless ``use_cache``).
        """
        self._check(hidden, mask, cache)
        ref = hidden[-1]
        b, s = ref.shape[:2]
        dtype = next(self.parameters()).dtype
        new_mask = torch.ones(b, s, device=ref.device) if mask is None else mask.to(device=ref.device)
        new_mask = new_mask.float()
        guide = self.guide_proj(ref.to(dtype))
        prev = (None, None) if cache is None else (cache.guide_sum, cache.count)
        guide_mean, guide_sum = running_mean(guide, new_mask, *prev)
        count = new_mask.sum(1, keepdim=True) + (0 if cache is None else cache.count)
        if cache is None and self.kernel == "fused":
            mixed, alpha, keys, layer_sums = self._mix_fused(guide, guide_mean, hidden, new_mask, use_cache)
            key_mask = new_mask
        else:
            key_mask = new_mask if cache is None else torch.cat([cache.key_mask, new_mask], dim=1)
            mixed, alpha, keys, layer_sums = self._mix_reference(guide, guide_mean, hidden, new_mask, key_mask, cache)
        out = self.up_proj(guide + self.fusion(mixed))
        new_cache = SideCache(keys, key_mask, guide_sum, torch.stack(layer_sums), count) if use_cache else None
        return out, alpha, new_cache

    def _mix_reference(
        self, guide: torch.Tensor, guide_mean: torch.Tensor, hidden: list[torch.Tensor], new_mask: torch.Tensor,
        key_mask: torch.Tensor, cache: SideCache | None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The plain modules: ``M`` ``[B, s, d]``, weights ``[B, s, n]``, keys so far, layer sums ``[B, d]``."""
        dtype = guide.dtype
        keys, pooled, layer_sums, interacted = [], [], [], []
        for slot, layer in enumerate(self.targets):
            feats = self.down_projs[slot](hidden[layer].to(dtype))
            all_keys = feats if cache is None else torch.cat([cache.keys[slot], feats], dim=1)
            prev = (None, None) if cache is None else (cache.layer_sum[slot], cache.count)
            mean, total = running_mean(feats, new_mask, *prev)
            pooled.append(mean)
            layer_sums.append(total)
            interacted.append(self.interaction(guide, all_keys, key_mask, causal=True))
            keys.append(all_keys)
        mixed, alpha = self.aggregation(guide_mean, torch.stack(pooled), torch.stack(interacted))
        return mixed, alpha, keys, layer_sums

    def _mix_fused(
        self, guide: torch.Tensor, guide_mean: torch.Tensor, hidden: list[torch.Tensor], mask: torch.Tensor,
        use_cache: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The fused kernel (memory linear in length) over a whole sequence, ``causal=True``."""
        feeds = [self._feed(slot, hidden[layer].to(guide.dtype)) for slot, layer in enumerate(self.targets)]
        mixed, alpha = guided_mix(guide, guide_mean, feeds, self.aggregation.gate, mask, None, self.mix_options)
        keys, layer_sums = [], []
        if use_cache:  # generation (no autograd): the keys and sums the next steps extend
            with torch.no_grad():
                for feed in feeds:
                    feats = feed.x if feed.fn is None else feed.fn(feed.x.to(guide.dtype))
                    keys.append(feats)
                    layer_sums.append((feats.float() * mask.unsqueeze(-1)).sum(1))
        return mixed, alpha, keys, layer_sums

    def _feed(self, slot: int, tap: torch.Tensor) -> LayerFeed:
        """What the fused kernel keeps for target ``slot`` (pre-norm projection, or the tap in bf16 with
        ``memory="min"``) and what it recomputes in backward (the LayerNorm, or the whole projection)."""
        down = self.down_projs[slot]
        if self.memory == "min":
            return LayerFeed(tap, down, tuple(down.parameters()), save_dtype=torch.bfloat16)
        if isinstance(down.norm, nn.LayerNorm):
            return LayerFeed(down.project(tap), down.norm, tuple(down.norm.parameters()))
        return LayerFeed(down(tap))

    def _check(self, hidden: list[torch.Tensor], mask: torch.Tensor | None, cache: SideCache | None) -> None:
        widths = self.in_widths
        if len(hidden) != len(widths):
            raise ValueError(
                f"expected {len(widths)} hidden states (in_widths), got {len(hidden)}; the side network "
                "was built for a backbone with another number of layers"
            )
        for i, (h, w) in enumerate(zip(hidden, widths, strict=True)):
            if h.dim() != 3 or h.shape[-1] != w or h.shape[:2] != hidden[-1].shape[:2]:
                raise ValueError(f"hidden state {i} has shape {tuple(h.shape)}; expected [B, L, {w}] like the guide")
        if mask is not None and tuple(mask.shape) != tuple(hidden[-1].shape[:2]):
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not match the new tokens {tuple(hidden[-1].shape[:2])}"
            )
        if cache is not None and cache.key_mask.shape[0] != hidden[-1].shape[0]:
            raise ValueError(
                f"the side cache holds {cache.key_mask.shape[0]} sequences, the input {hidden[-1].shape[0]}"
            )


def running_mean(
    x: torch.Tensor, mask: torch.Tensor, prev_sum: torch.Tensor | None = None, prev_count: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked running mean over positions: ``out[b, q] = sum_{k<=q} m[b,k] x[b,k] / max(1, sum_{k<=q} m[b,k])``.

    Args:
        x: ``[B, s, d]``. mask: ``[B, s]`` float, 1 for real positions.
        prev_sum: ``[B, d]`` float32 sum over earlier positions (from a cache), or None.
        prev_count: ``[B, 1]`` float32 number of earlier real positions, or None.

    Returns:
        the running mean ``[B, s, d]`` (in ``x``'s dtype) and the float32 total ``[B, d]`` after the last position.
    Sums are accumulated in float32 so long sequences in bf16 do not drift.
    """
    m = mask.to(torch.float32).unsqueeze(-1)
    sums = torch.cumsum(x.float() * m, dim=1)
    counts = torch.cumsum(m, dim=1)
    if prev_sum is not None:
        sums = sums + prev_sum.unsqueeze(1)
        counts = counts + prev_count.unsqueeze(1)
    return (sums / counts.clamp(min=1.0)).to(x.dtype), sums[:, -1]
