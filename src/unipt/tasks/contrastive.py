"""Contrastive losses over a batch similarity matrix, shared by image and video retrieval.

Conventions: ``sim`` is ``[B, B]`` with rows = the visual side (image / video) of sample i and
columns = the text of sample j, so sample i's own pair is the diagonal. ``positives`` ``[B, B]``
(bool) marks every pair that shows the same visual item, e.g. two captions of one image sampled
into the same batch. The diagonal is the anchor pair; off-diagonal positives are *neither*
anchors nor negatives, so a caption is never pushed away from its own image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def positive_mask(index: torch.Tensor | None, batch: int, device: torch.device | None = None) -> torch.Tensor:
    """``[B, B]`` bool mask of pairs that share a visual item.

    Args:
        index: ``[B]`` id of the image / video of each sample, or ``None`` (every sample is its
            own item: the plain diagonal).
        batch: B, used when ``index`` is ``None``.
    """
    if index is None:
        return torch.eye(batch, dtype=torch.bool, device=device)
    index = torch.as_tensor(index, device=device)
    if index.shape != (batch,):
        raise ValueError(f"index must have shape [{batch}], got {tuple(index.shape)}")
    return index.unsqueeze(0) == index.unsqueeze(1)


def hinge_triplet_loss(
    sim: torch.Tensor, positives: torch.Tensor, margin: float = 0.2, max_violation: bool = False
) -> torch.Tensor:
    """VSE hinge triplet loss, summed over the batch (VSE++ when ``max_violation``).

    For anchor pair (i, i) with score s_ii, every negative caption j of image i costs
    ``relu(margin + s_ij - s_ii)`` and every negative image k of caption i costs
    ``relu(margin + s_ki - s_ii)``. With ``max_violation`` only the hardest negative in each
    direction counts (VSE++); otherwise all negatives are summed, which VSE∞ uses for the first
    epoch because hardest negatives of a random embedding are noise.

    The result is a sum, not a mean, as in VSE∞: its learning rate (5e-4) is tuned for that.

    Args:
        sim: ``[B, B]`` similarities, rows visual, columns text.
        positives: ``[B, B]`` bool, true where row and column show the same item (diagonal incl.).
        margin: hinge margin (0.2 in VSE∞).
        max_violation: hardest negative only.
    """
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim must be square [B, B], got {tuple(sim.shape)}")
    anchor = sim.diagonal()
    cost_text = (margin + sim - anchor.unsqueeze(1)).clamp(min=0).masked_fill(positives, 0.0)
    cost_visual = (margin + sim - anchor.unsqueeze(0)).clamp(min=0).masked_fill(positives, 0.0)
    if max_violation:
        return cost_text.amax(dim=1).sum() + cost_visual.amax(dim=0).sum()
    return cost_text.sum() + cost_visual.sum()


def info_nce_loss(
    sim: torch.Tensor, scale: torch.Tensor | float, positives: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP / CLIP4Clip ``CrossEn``), mean over the batch.

    ``logits = scale * sim``; the loss is the mean of the cross-entropies visual->text (rows) and
    text->visual (columns) with the diagonal as target. Off-diagonal positives are removed from
    the softmax denominators.

    Args:
        sim: ``[B, B]`` cosine similarities, rows visual, columns text.
        scale: inverse temperature (a float or a 0-d tensor, learnable or not).
        positives: optional ``[B, B]`` bool mask of pairs sharing an item.
    """
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim must be square [B, B], got {tuple(sim.shape)}")
    logits = sim * scale
    if positives is not None:
        eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
        logits = logits.masked_fill(positives & ~eye, float("-inf"))
    target = torch.arange(sim.shape[0], device=sim.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
