"""Fused parallel interaction + confidence aggregation, with memory linear in sequence length.

Computes exactly what :class:`ParallelInteraction` and :class:`ConfidenceAggregation` compute::

    F_i  = feature_i(x_i)                              per target layer, [B, Lk, d]
    t_i  = masked mean of F_i (running mean if causal) [B, d]  ([B, Lq, d] if causal)
    a    = softmax_i(gate(g * t_i))                    one shared gate
    F'_i = L1row(relu((G F_i^T) * mask)) F_i + skip_i  [B, Lq, d]
    M    = sum_i a_i F'_i

but never holds a ``[B, Lq, Lk]`` map whole, nor all layers at once:

* forward streams over layers with an online softmax (running max and sum of the gate logits), so the
  mix lives in ONE ``[B, Lq, d]`` buffer, and over blocks of query rows, so a map exists only as a
  ``[B, block, Lk]`` slice;
* it saves the guide ``G``, each layer's *input* ``x_i`` (the pre-norm projection by default; the raw
  tap in half precision in memory mode) and the layer weights ``[n, B]``;
* backward recomputes ``F_i = feature_i(x_i)`` and each map block with its row normalisers (a block
  holds whole rows, so they cost one reduction and stay consistent with the recomputed ``F_i``), and
  writes the gradients of the maps by hand. Two identities keep it to three matrix products per block: with
  ``E = g_out F^T`` (``g_out``: the incoming gradient), ``dA = a_i E`` and the row term of the L1
  normalisation, ``sum_j dA_qj A_qj``, is ``a_i * sum_j E_qj A_qj``, which is also what the layer
  weight needs (``g_out . F'_i``), so ``A F`` is never recomputed.

The small parts (feature function, pooling, gate, softmax) go through autograd inside backward, so
any per-token feature function (Linear, LayerNorm, their composition) works unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from unipt.outputs import masked_mean

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
MAP_ELEMENTS = 1 << 22  # default block: about 4M map elements (16 MiB in fp32) per [B, block, Lk] slice


@dataclass(frozen=True)
class LayerFeed:
    """One target layer's input to the fused kernel.

    Attributes:
        x: ``[B, Lk, *]`` what is saved for backward; ``F = fn(x)`` is the layer's ``[B, Lk, d]`` features.
        fn: per-token feature function recomputed in backward (``None``: ``F = x``). It must not
            depend on other tokens of the batch (no BatchNorm in training mode) and must use only
            ``params`` as trainable tensors.
        params: the trainable tensors ``fn`` uses (they receive gradients).
        save_dtype: keep ``x`` in this dtype for backward (memory mode), ``None``: as it is.
    """

    x: torch.Tensor
    fn: FeatureFn | None = None
    params: tuple[torch.Tensor, ...] = ()
    save_dtype: torch.dtype | None = None


@dataclass(frozen=True)
class MixOptions:
    """The non-tensor settings of the kernel (see :class:`ParallelInteraction` for their meaning)."""

    skip: str = "identity"  # identity | class_token | none
    eps: float = 1e-6
    eps_mode: str = "add"  # add | clamp
    interaction: bool = True  # False: F'_i = F_i (the "no interaction" ablation)
    uniform: bool = False  # True: a_i = 1/n (the "no confidence" ablation)
    causal: bool = False  # query q reads keys <= q; per-position running-mean summaries and weights
    block: int | None = None  # query rows per block (None: about MAP_ELEMENTS per map slice)


# torch.compile runs this autograd function eagerly (its backward calls autograd.grad); the layers
# around it (projections, fusion, up-projection) are what the compiler fuses.
@torch.compiler.disable
def guided_mix(
    guide: torch.Tensor,
    guide_pooled: torch.Tensor,
    feeds: Sequence[LayerFeed],
    gate: nn.Linear | None,
    key_mask: torch.Tensor | None = None,
    class_index: torch.Tensor | None = None,
    options: MixOptions = MixOptions(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interact every layer with the guide and mix them (see module docstring).

    Args:
        guide: ``G`` ``[B, Lq, d]``. guide_pooled: ``g`` ``[B, d]`` (``[B, Lq, d]`` if causal).
        feeds: one :class:`LayerFeed` per target layer. gate: the shared ``Linear(d, 1)``
            (unused, may be ``None``, when ``options.uniform``).
        key_mask: ``[B, Lk]`` 1 for real tokens. class_index: ``[B]`` class-token position for the
            ``class_token`` skip (``None``: token 0).

    Returns:
        ``M`` ``[B, Lq, d]`` and the layer weights ``[B, n]`` (``[B, Lq, n]`` if causal).
    """
    if not feeds:
        raise ValueError("guided_mix needs at least one target layer")
    if options.causal and guide.shape[1] != feeds[0].x.shape[1]:
        raise ValueError(f"causal mixing needs as many queries as keys, got {guide.shape[1]} vs {feeds[0].x.shape[1]}")
    if options.skip == "identity" and options.interaction and guide.shape[1] != feeds[0].x.shape[1]:
        raise ValueError(
            f"identity skip needs as many guide tokens as layer tokens, got {guide.shape[1]} vs "
            f"{feeds[0].x.shape[1]}; use skip='class_token' for a single-token guide"
        )
    if gate is None and not options.uniform:
        raise ValueError("confidence aggregation needs the shared gate Linear(d, 1)")
    if key_mask is not None and bool(key_mask.all()):  # no padding: skip the mask passes over every map
        key_mask = None
    gate_params = (gate.weight, gate.bias) if gate is not None else ()
    flat: list[torch.Tensor] = []
    for feed in feeds:
        flat += [feed.x, *feed.params]
    layout = tuple((feed.fn, len(feed.params), feed.save_dtype) for feed in feeds)
    mixed, alpha = _GuidedMix.apply(
        options, layout, len(gate_params), key_mask, class_index, guide, guide_pooled, *gate_params, *flat
    )
    return mixed, alpha.movedim(0, -1)


# ----------------------------------------------------------------------------------- pieces
def pool_layer(feats: torch.Tensor, key_mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """Masked mean of ``[B, L, d]`` over tokens: ``[B, d]``; causal: running mean ``[B, L, d]``."""
    if causal:
        m = feats.new_ones(feats.shape[:2]) if key_mask is None else key_mask.to(feats.dtype)
        return (feats * m.unsqueeze(-1)).cumsum(1) / m.cumsum(1).clamp(min=1.0).unsqueeze(-1)
    return masked_mean(feats, key_mask)


def _gate_logit(gate_params: Sequence[torch.Tensor], guide_pooled: torch.Tensor, pooled: torch.Tensor,
                uniform: bool) -> torch.Tensor:
    """``c_i = w^T (g * t_i) + b``: ``[B]`` (``[B, Lq]`` if causal); zeros for uniform weights."""
    if uniform:
        return pooled.new_zeros(pooled.shape[:-1])
    weight, bias = gate_params
    return torch.nn.functional.linear(guide_pooled * pooled, weight, bias).squeeze(-1)


def _blocks(lq: int, lk: int, batch: int, block: int | None) -> list[tuple[int, int]]:
    size = block or max(16, MAP_ELEMENTS // max(1, batch * lk))
    return [(s, min(s + size, lq)) for s in range(0, lq, size)]


def _key_weights(key_mask: torch.Tensor | None, start: int, end: int, keys: int, causal: bool,
                 like: torch.Tensor) -> torch.Tensor | None:
    """Multiplicative key mask for query rows ``start:end``: ``[B|1, rows|1, keys]`` or ``None``."""
    weights = None if key_mask is None else key_mask[:, :keys].to(like.dtype).unsqueeze(1)
    if causal:
        rows = torch.arange(start, end, device=like.device).unsqueeze(1)
        tri = (torch.arange(keys, device=like.device).unsqueeze(0) <= rows).to(like.dtype).unsqueeze(0)
        weights = tri if weights is None else weights * tri
    return weights


def _normaliser(row_sum: torch.Tensor, eps: float, eps_mode: str) -> torch.Tensor:
    return row_sum + eps if eps_mode == "add" else row_sum.clamp(min=eps)


def _skip_term(feats: torch.Tensor, skip: str, class_index: torch.Tensor | None, lq: int) -> torch.Tensor | None:
    if skip == "identity":
        return feats
    if skip == "class_token":
        token = feats[torch.arange(feats.shape[0], device=feats.device), _class_index(feats, class_index)]
        return token.unsqueeze(1).expand(-1, lq, -1)
    return None


def _interact(guide: torch.Tensor, feats: torch.Tensor, key_mask: torch.Tensor | None,
              options: MixOptions, class_index: torch.Tensor | None) -> torch.Tensor:
    """``F' = A F + skip`` ``[B, Lq, d]``, block by block."""
    lq, lk = guide.shape[1], feats.shape[1]
    skip = _skip_term(feats, options.skip, class_index, lq)
    blocks = _blocks(lq, lk, guide.shape[0], options.block)
    out = torch.empty_like(guide) if skip is None or len(blocks) > 1 or options.causal else None
    for s, e in blocks:
        keys = e if options.causal else lk
        fk = feats[:, :keys]
        attn, _, _ = _attention(guide[:, s:e], fk, key_mask, s, e, options)
        if out is None:  # one block: A F + skip in one call
            return torch.baddbmm(skip, attn, fk)
        out[:, s:e] = attn @ fk
    return out if skip is None else out.add_(skip)


def _class_index(feats: torch.Tensor, class_index: torch.Tensor | None) -> torch.Tensor:
    if class_index is None:
        return torch.zeros(feats.shape[0], dtype=torch.long, device=feats.device)
    return class_index.to(feats.device)


# ----------------------------------------------------------------------------------- autograd
class _GuidedMix(torch.autograd.Function):
    """Inputs: options, layout, n_gate, key_mask, class_index, guide, guide_pooled, *gate, *flat feeds."""

    @staticmethod
    def forward(ctx, options, layout, n_gate, key_mask, class_index, guide, guide_pooled, *rest):  # type: ignore[override]
        gate_params, flat = rest[:n_gate], rest[n_gate:]
        feeds = _unflatten(layout, flat)
        acc = torch.zeros_like(guide)
        run_max = run_sum = None
        logits, saved_x = [], []
        for (fn, _, save_dtype), (x, _params) in zip(layout, feeds, strict=True):
            feats = x if fn is None else fn(x)
            pooled = pool_layer(feats, key_mask, options.causal)
            logit = _gate_logit(gate_params, guide_pooled, pooled, options.uniform)
            out = _interact(guide, feats, key_mask, options, class_index) if options.interaction else feats
            # Online softmax over layers: rescale the running mix whenever a larger logit arrives.
            new_max = logit if run_max is None else torch.maximum(run_max, logit)
            weight = (logit - new_max).exp()
            if run_max is None:
                run_sum = weight
                acc.addcmul_(out, _per_row(weight, acc))
            else:
                scale = (run_max - new_max).exp()
                run_sum = run_sum * scale + weight
                acc.mul_(_per_row(scale, acc)).addcmul_(out, _per_row(weight, acc))
            run_max = new_max
            logits.append(logit)
            saved_x.append(x if save_dtype is None else x.detach().to(save_dtype))
        mixed = acc.div_(_per_row(run_sum, acc))
        alpha = torch.stack(logits).softmax(0)  # [n, B] or [n, B, Lq]
        ctx.save_for_backward(guide, guide_pooled, alpha, *gate_params, *saved_x,
                              *(t for t in (key_mask, class_index) if t is not None))
        # The feature functions use the modules' own parameters: keep those very objects so that
        # autograd.grad in backward finds them in the recomputed graph (parameters are not activations).
        ctx.params = [p for _x, params in feeds for p in params]
        ctx.options, ctx.layout, ctx.n_gate = options, layout, n_gate
        ctx.has_mask, ctx.has_index = key_mask is not None, class_index is not None
        ctx.x_dtypes = [x.dtype for x, _ in feeds]
        ctx.autocast = _autocast_state(guide.device.type)
        return mixed, alpha

    @staticmethod
    def backward(ctx, grad_mixed, grad_alpha):  # type: ignore[override]
        with torch.autocast(**ctx.autocast):
            return _backward(ctx, grad_mixed, grad_alpha)


def _backward(ctx, grad_mixed: torch.Tensor, grad_alpha_out: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    options, layout = ctx.options, ctx.layout
    saved = list(ctx.saved_tensors)
    guide, guide_pooled, alpha = saved[:3]
    del saved[:3]
    gate_params = saved[:ctx.n_gate]
    del saved[:ctx.n_gate]
    n = len(layout)
    xs, rest = saved[:n], saved[n:]
    flat_params = ctx.params
    key_mask = rest.pop(0) if ctx.has_mask else None
    class_index = rest.pop(0) if ctx.has_index else None
    needs = ctx.needs_input_grad[5:]  # guide, guide_pooled, *gate, *flat

    grad_mixed = grad_mixed.contiguous()
    grad_guide = torch.zeros_like(guide) if needs[0] else None
    leaves: list[torch.Tensor | None] = []
    feats_graph, grad_feats, grad_alpha = [], [], []
    x_positions = _x_positions(layout)
    with torch.enable_grad():
        for i, (fn, _count, _dt) in enumerate(layout):
            x = xs[i].detach().to(ctx.x_dtypes[i])
            x_needs = needs[2 + ctx.n_gate + x_positions[i]]
            leaf = x.requires_grad_(True) if x_needs else x
            feats = leaf if fn is None else fn(leaf)
            leaves.append(leaf if x_needs else None)
            feats_graph.append(feats)
            a = _per_row(alpha[i], guide)  # [B, 1, 1] or [B, Lq, 1]
            with torch.no_grad():
                gf, ga = _layer_backward(guide, feats.detach(), grad_mixed, a, key_mask, class_index, options,
                                         grad_guide)
            grad_feats.append(gf)
            grad_alpha.append(ga)
        # Layer weights, gate and pooled summaries: small, through autograd.
        grad_alpha_t = torch.stack(grad_alpha)
        if grad_alpha_out is not None:
            grad_alpha_t = grad_alpha_t + grad_alpha_out
        outputs, grads_out = list(feats_graph), list(grad_feats)
        wanted: list[tuple[int, torch.Tensor]] = []  # (slot in the returned tuple, tensor to differentiate)
        if not options.uniform:
            pooled_leaf = guide_pooled.detach().requires_grad_(needs[1])
            gate_leaves = [p.detach().requires_grad_(needs[2 + k]) for k, p in enumerate(gate_params)]
            logits = torch.stack([
                _gate_logit(gate_leaves, pooled_leaf, pool_layer(f, key_mask, options.causal), False)
                for f in feats_graph
            ])
            outputs.append(logits.softmax(0))
            grads_out.append(grad_alpha_t)
            wanted += [(6 + k, t) for k, t in enumerate([pooled_leaf, *gate_leaves]) if t.requires_grad]
        first_flat = 7 + ctx.n_gate
        for i, (_fn, count, _dt) in enumerate(layout):
            if leaves[i] is not None:
                wanted.append((first_flat + x_positions[i], leaves[i]))
            start = sum(c for _f, c, _d in layout[:i])
            for j, param in enumerate(flat_params[start:start + count]):
                if param.requires_grad:
                    wanted.append((first_flat + x_positions[i] + 1 + j, param))
        pairs = [(o, g) for o, g in zip(outputs, grads_out, strict=True) if o.requires_grad]
        grads = torch.autograd.grad([o for o, _ in pairs], [t for _, t in wanted], [g for _, g in pairs],
                                    allow_unused=True) if pairs and wanted else []
    result: list[torch.Tensor | None] = [None] * (first_flat + len(ctx.x_dtypes) + len(flat_params))
    result[5] = grad_guide
    for (slot, tensor), grad in zip(wanted, grads, strict=True):
        result[slot] = None if grad is None else grad.to(tensor.dtype)
    for i, position in enumerate(x_positions):  # the taps' own dtype (they may be saved in half precision)
        slot = first_flat + position
        if result[slot] is not None:
            result[slot] = result[slot].to(ctx.x_dtypes[i])
    if grad_guide is not None:
        result[5] = grad_guide.to(guide.dtype)
    return tuple(result)


def _layer_backward(guide, feats, grad_mixed, a, key_mask, class_index, options, grad_guide):
    """Gradients of ``sum a_i F'_i`` for one layer: ``(dL/dF_i [B, Lk, d], dL/da_i [B] or [B, Lq])``.

    Per block, with ``E = g_out F^T`` and ``r_q = sum_j E_qj A_qj``:
    ``dS = (a / N) (E - r) [S > 0]``, ``dG = dS F``, ``dF = dS^T G + A^T (a g_out)``, ``da = sum_q r_q``
    (plus the skip terms). The row sum ``r`` also stands for the L1 normalisation's own gradient.
    """
    b, lq, _ = guide.shape
    lk = feats.shape[1]
    grad_out = grad_mixed * a  # dL/dF'_i
    row_dots = guide.new_zeros(b, lq)  # g_out . F'_q per query row
    skip = feats if not options.interaction else _skip_term(feats, options.skip, class_index, lq)
    if skip is not None:
        row_dots += torch.linalg.vecdot(grad_mixed, skip, dim=-1)
    if skip is feats:  # identity skip (or no interaction): F' = ... + F
        grad_feats = grad_out.clone()
    else:
        grad_feats = torch.zeros_like(feats)
        if skip is not None:  # class token: each query adds the same token
            grad_feats[torch.arange(b, device=feats.device), _class_index(feats, class_index)] += grad_out.sum(1)
    if not options.interaction:
        return grad_feats, (row_dots if options.causal else row_dots.sum(1))
    for s, e in _blocks(lq, lk, b, options.block):
        keys = e if options.causal else lk
        fk, gq = feats[:, :keys], guide[:, s:e]
        attn, inv_norm, row_sum = _attention(gq, fk, key_mask, s, e, options)
        grad_scores = grad_mixed[:, s:e] @ fk.transpose(1, 2)  # E
        dots = torch.linalg.vecdot(grad_scores, attn, dim=-1)  # r
        row_dots[:, s:e] += dots
        row_term = dots.unsqueeze(-1)
        if options.eps_mode == "clamp":  # rows held at eps: the normaliser is a constant there
            row_term = row_term * (row_sum >= options.eps).to(row_term.dtype)
        a_rows = a if a.shape[1] == 1 else a[:, s:e]
        # sign(A) is the ReLU's [S > 0] (A >= 0), and much cheaper than a boolean mask on CPU.
        grad_scores.sub_(row_term).mul_(attn.sign()).mul_(a_rows * inv_norm)
        if grad_guide is not None:
            grad_guide[:, s:e].baddbmm_(grad_scores, fk)
        grad_feats[:, :keys].baddbmm_(grad_scores.transpose(1, 2), gq).baddbmm_(attn.transpose(1, 2),
                                                                                grad_out[:, s:e])
    return grad_feats, (row_dots if options.causal else row_dots.sum(1))


def _attention(gq: torch.Tensor, fk: torch.Tensor, key_mask: torch.Tensor | None, start: int, end: int,
               options: MixOptions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One block of ``A = L1row(relu((G F^T) * mask))`` ``[B, rows, keys]``, ``1 / N`` and the row sums."""
    scores = gq @ fk.transpose(1, 2)
    weights = _key_weights(key_mask, start, end, fk.shape[1], options.causal, scores)
    if weights is not None:
        scores.mul_(weights)
    attn = scores.relu_()
    row_sum = attn.sum(-1, keepdim=True)
    inv_norm = _normaliser(row_sum, options.eps, options.eps_mode).reciprocal_()
    return attn.mul_(inv_norm), inv_norm, row_sum


# ----------------------------------------------------------------------------------- helpers
def _x_positions(layout) -> list[int]:
    """Index of each layer's ``x`` in the flat list ``[x_0, *params_0, x_1, *params_1, ...]``."""
    positions, i = [], 0
    for _fn, count, _dt in layout:
        positions.append(i)
        i += 1 + count
    return positions


def _unflatten(layout, flat) -> list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]]:
    feeds, i = [], 0
    for _fn, count, _dt in layout:
        feeds.append((flat[i], tuple(flat[i + 1:i + 1 + count])))
        i += 1 + count
    return feeds


def _per_row(weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[B]`` -> ``[B, 1, 1]``; ``[B, Lq]`` -> ``[B, Lq, 1]`` (broadcast over ``like`` ``[B, Lq, d]``)."""
    return weight.view(weight.shape[0], 1, 1) if weight.dim() == 1 else weight.unsqueeze(-1)


def _cast(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if t is None else t.to(dtype)


def _autocast_state(device_type: str) -> dict:
    enabled = torch.is_autocast_enabled(device_type)
    dtype = torch.get_autocast_dtype(device_type) if enabled else torch.float32
    return {"device_type": device_type, "dtype": dtype, "enabled": enabled}
