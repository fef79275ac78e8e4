"""MDETR's prediction heads over decoder outputs (soft-token classes, boxes, contrastive alignment).

The same four modules exist twice: inside :class:`~unipt.models.mdetr.model.MDETR` (top-level keys
``class_embed``, ``bbox_embed.layers.<i>``, ``contrastive_align_projection_{image,text}``, as released)
and as a trainable copy in the grounding task, which UniPT's recipe fine-tunes at ``lr x 0.1`` while the
network below stays frozen. Both compute :func:`head_outputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unipt.tasks.grounding import MLP  # DETR's box MLP, keys layers.<i>


@dataclass
class HeadOutputs:
    """Per decoder output ``k`` (earlier layers first, final last).

    Attributes:
        logits: ``[k, B, Q, C + 1]`` soft-token logits; the last class is "no object".
        boxes: ``[k, B, Q, 4]`` normalised ``cxcywh`` boxes.
        proj_queries: ``[k, B, Q, H]`` L2-normalised query projections (``None`` without alignment heads).
        proj_tokens: ``[B, T, H]`` L2-normalised text-token projections (``None`` likewise).
    """

    logits: torch.Tensor
    boxes: torch.Tensor
    proj_queries: torch.Tensor | None = None
    proj_tokens: torch.Tensor | None = None

    def layer(self, k: int) -> HeadOutputs:
        """The outputs of decoder output ``k`` alone (``[B, ...]``)."""
        queries = self.proj_queries[k] if self.proj_queries is not None else None
        return HeadOutputs(self.logits[k], self.boxes[k], queries, self.proj_tokens)

    @property
    def depth(self) -> int:
        return self.logits.shape[0]


class MDETRHeads(nn.Module):
    """The trainable copy of MDETR's heads (same attribute names, so the same state-dict keys)."""

    def __init__(self, hidden_dim: int = 256, num_classes: int = 255, contrastive_hdim: int = 64,
                 contrastive_align: bool = True):
        super().__init__()
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)
        self.contrastive_align_projection_image = nn.Linear(hidden_dim, contrastive_hdim) if contrastive_align else None
        self.contrastive_align_projection_text = nn.Linear(hidden_dim, contrastive_hdim) if contrastive_align else None

    def forward(self, hidden: torch.Tensor, text_memory: torch.Tensor | None) -> HeadOutputs:
        return head_outputs(self, hidden, text_memory)


def head_outputs(owner: nn.Module, hidden: torch.Tensor, text_memory: torch.Tensor | None) -> HeadOutputs:
    """Apply ``owner``'s ``class_embed`` / ``bbox_embed`` / alignment projections.

    Args:
        owner: an :class:`MDETRHeads` or the full MDETR (same attribute names).
        hidden: ``[k, B, Q, D]`` decoder outputs.
        text_memory: ``[B, T, D]`` the encoder's text tokens (needed by the alignment heads).
    """
    logits = owner.class_embed(hidden)
    boxes = owner.bbox_embed(hidden).sigmoid()
    align_image = getattr(owner, "contrastive_align_projection_image", None)
    if align_image is None or text_memory is None:
        return HeadOutputs(logits, boxes)
    queries = F.normalize(align_image(hidden), p=2, dim=-1)
    tokens = F.normalize(owner.contrastive_align_projection_text(text_memory), p=2, dim=-1)
    return HeadOutputs(logits, boxes, queries, tokens)
