"""Gather embeddings from every process for a contrastive loss over the global batch (CLIP4Clip).

Under DDP each process sees ``B`` pairs; CLIP4Clip's released ``AllGather`` concatenates every rank's
embeddings so the InfoNCE softmax runs over all ``world x B`` pairs: the objective of one process with
the global batch.

Gradients. Every rank then computes the same global loss ``L``. The released backward hands each rank
the slice of ``dL/d(gathered)`` for its own rows, and DDP averages the ranks' parameter gradients, so the
parameters receive ``dL/dp / world``; Adam's update nearly cancels that factor, gradient clipping does
not. Here the backward sums the gradient over ranks before taking the slice (each rank holds the same
``dL/d(gathered)``, so this is ``world x`` the released slice): after DDP's averaging the parameters get
exactly the one-process gradient (a gloo test checks two processes x B against one process x 2B).
(``torch.distributed.nn.functional.all_gather`` is deprecated and its gloo backward, an all-to-all,
deadlocked against DDP's own all-reduce here.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes in the default group (1 without ``torch.distributed``)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0; backward: all-reduce (sum) the gradient, keep this rank's rows."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        ctx.rows, ctx.rank = tensor.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """``[B, ...]`` on each of W ranks -> ``[W * B, ...]`` in rank order, differentiable w.r.t. the local rows.

    Every rank must pass the same ``B`` (the trainer drops the last incomplete training batch). Without
    an initialised process group (or with one process) the tensor is returned unchanged.
    """
    if world_size() == 1:
        return tensor
    tensor = tensor.contiguous()
    if not tensor.requires_grad:
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor)
        return torch.cat(parts)
    return _GatherRows.apply(tensor)
