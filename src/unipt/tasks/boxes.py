"""Box utilities: format conversion, IoU and generalised IoU (Rezatofighi et al., CVPR 2019).

Boxes are ``[..., 4]``: ``cxcywh`` = (centre x, centre y, width, height) or ``xyxy`` = (x0, y0,
x1, y1). The IoU functions broadcast over the leading dimensions, so the same code gives
element-wise values (``[N, 4]`` with ``[N, 4]`` -> ``[N]``) and pairwise tables (``a[:, None]``
with ``b[None]`` -> ``[N, M]``). IoU is invariant to scaling each axis, so normalised and pixel
coordinates give the same values.
"""

from __future__ import annotations

import torch


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (cx, cy, w, h) -> (x0, y0, x1, y1)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (x0, y0, x1, y1) -> (cx, cy, w, h)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """``[...]`` area of ``xyxy`` boxes ``[..., 4]`` (degenerate boxes count as 0)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _intersection_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    top_left = torch.maximum(a[..., :2], b[..., :2])
    bottom_right = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    return inter, box_area(a) + box_area(b) - inter


def box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of ``xyxy`` boxes ``a`` and ``b`` (broadcast ``[..., 4]``) -> ``[...]``."""
    inter, union = _intersection_union(a, b)
    return inter / union.clamp(min=eps)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """GIoU = IoU - (|C| - |A ∪ B|) / |C| with C the smallest box enclosing both; in [-1, 1].

    Unlike IoU it still has a gradient when the boxes do not overlap, which is why DETR-style
    losses use ``1 - GIoU``. ``a``, ``b``: ``xyxy`` ``[..., 4]`` (broadcast) -> ``[...]``.
    """
    inter, union = _intersection_union(a, b)
    iou = inter / union.clamp(min=eps)
    enclosing = box_area(
        torch.cat((torch.minimum(a[..., :2], b[..., :2]), torch.maximum(a[..., 2:], b[..., 2:])), -1)
    )
    return iou - (enclosing - union) / enclosing.clamp(min=eps)


def pairwise_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` IoU table of ``xyxy`` boxes ``a`` ``[N, 4]`` and ``b`` ``[M, 4]``."""
    return box_iou(a.unsqueeze(1), b.unsqueeze(0))


def pairwise_generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` GIoU table of ``xyxy`` boxes ``a`` ``[N, 4]`` and ``b`` ``[M, 4]``."""
    return generalized_box_iou(a.unsqueeze(1), b.unsqueeze(0))
