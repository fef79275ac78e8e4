"""Referring-expression comprehension with MDETR's own heads and losses (RefCOCO / RefCOCO+ / RefCOCOg).

Stream: the decoder queries of an MDETR tower (UniPT's ``mdetr`` preset): ``last_hidden_state``
``[B, Q, D]`` (final output) and ``aux_hidden_states`` ``[k, B, Q, D]`` (UniPT: the adapted decoder
taps 1, 3, 5, each with the same losses), plus ``head_inputs["text_memory"]`` ``[B, T, D]``, the frozen
encoder's text tokens that the contrastive-alignment head reads.

Batch: ``boxes`` ``[B, 4]`` (the referred box, normalised ``cxcywh``) and ``token_map`` ``[B, T]`` (its
caption tokens, from :class:`~unipt.models.mdetr.preprocess.MDETRPreprocessor`).

Heads (a trainable copy of the checkpoint's, see :meth:`init_from_backbones`): soft-token classifier,
box MLP, contrastive-alignment projections. Loss: :class:`~unipt.tasks.mdetr_losses.MDETRCriterion`.

Evaluation, as MDETR's ``RefExpEvaluator``: the top-scoring box of the final layer (score = 1 - p(no
object)) against the referred box. ``acc@0.5``: IoU >= 0.5 (the usual RefCOCO accuracy);
``acc@0.5_giou``: GIoU >= 0.5, the rule the released evaluator applies (never higher); ``mean_iou``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unipt.outputs import AdaptedOutput
from unipt.tasks.base import Task
from unipt.tasks.boxes import box_iou, cxcywh_to_xyxy, generalized_box_iou
from unipt.tasks.grounding import target_boxes
from unipt.tasks.mdetr_heads import HeadOutputs, MDETRHeads
from unipt.tasks.mdetr_losses import MDETRCriterion, MDETRLossConfig


class MDETRGrounding(Task):
    """MDETR heads + losses + the RefCOCO protocol (see the module docstring).

    Args:
        hidden_dim / num_classes / contrastive_hdim / contrastive_align: head sizes (replaced by the
            backbone's when it is an MDETR, see :meth:`init_from_backbones`).
        loss: :class:`~unipt.tasks.mdetr_losses.MDETRLossConfig` fields (costs, weights, eos_coef...).
        tower: name of the MDETR stream in ``features``.
    """

    name = "mdetr_grounding"
    primary_metric = "acc@0.5"

    def __init__(self, hidden_dim: int = 256, num_classes: int = 255, contrastive_hdim: int = 64,
                 contrastive_align: bool = True, loss: dict[str, Any] | None = None, tower: str = "mdetr"):
        super().__init__()
        self.towers = (tower,)
        self.heads = MDETRHeads(hidden_dim, num_classes, contrastive_hdim, contrastive_align)
        self.criterion = MDETRCriterion(MDETRLossConfig(**(loss or {})))

    def init_from_backbones(self, backbones: dict[str, nn.Module]) -> None:
        """Start from the checkpoint's heads: rebuild them with its sizes and copy its weights."""
        model = backbones.get(self.towers[0])
        if model is None or not hasattr(model, "head_state_dict"):
            raise ValueError(
                f"task {self.name!r} reads the MDETR tower {self.towers[0]!r}; the towers are {sorted(backbones)} "
                "(use backbone 'mdetr:<checkpoint>' and set task.options.tower)"
            )
        cfg = model.config
        self.heads = MDETRHeads(cfg.hidden_dim, cfg.num_classes, cfg.contrastive_hdim, cfg.contrastive_align)
        self.heads.load_state_dict(model.head_state_dict())

    def head_outputs(self, out: AdaptedOutput) -> HeadOutputs:
        """Heads on every decoder output ``[k, B, Q, ...]`` (aux outputs first, final last)."""
        hidden = out.last_hidden_state.unsqueeze(0)
        if out.aux_hidden_states is not None:
            hidden = torch.cat([out.aux_hidden_states, hidden])
        text = (out.head_inputs or {}).get("text_memory")
        if text is None and self.heads.contrastive_align_projection_image is not None:
            raise ValueError(
                "the MDETR stream carries no head_inputs['text_memory'] (the frozen encoder's text tokens); "
                "run the MDETR backbone live (activation caches do not store it)"
            )
        return self.heads(hidden, text)

    def forward(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``loss`` plus the final layer's unweighted ``loss_*`` terms and its ``boxes`` ``[B, Q, 4]``."""
        heads = self.head_outputs(self.stream(features, self.towers[0]))
        device = heads.logits.device
        boxes = target_boxes(self.require(batch, "boxes"), batch.get("box_mask"), device)
        maps = self.require(batch, "token_map").to(device)
        token_maps = [m.reshape(1, -1) for m in maps]  # one referred box per expression
        losses = self.criterion(heads, boxes, token_maps)
        final = {k: v.detach() for k, v in losses.items() if k.startswith("loss_") and not k[-1].isdigit()}
        return {"loss": losses["loss"], **final, "boxes": heads.boxes[-1]}

    @torch.no_grad()
    def predict(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``box`` ``[B, 4]`` (top-scoring query, ``cxcywh``), ``score`` ``[B]`` and, with ``boxes`` in the
        batch, ``iou`` / ``giou`` ``[B]`` against the referred box."""
        out = self.stream(features, self.towers[0])
        logits = self.heads.class_embed(out.last_hidden_state)
        boxes = self.heads.bbox_embed(out.last_hidden_state).sigmoid()
        scores = 1 - logits.softmax(-1)[..., -1]
        top = scores.argmax(1)
        rows = torch.arange(scores.shape[0], device=scores.device)
        result = {"box": boxes[rows, top], "score": scores[rows, top]}
        if "boxes" in batch:
            referred = torch.stack([t[0] for t in target_boxes(batch["boxes"], batch.get("box_mask"), scores.device)])
            predicted, target = cxcywh_to_xyxy(result["box"]), cxcywh_to_xyxy(referred)
            result["iou"] = box_iou(predicted, target)
            result["giou"] = generalized_box_iou(predicted, target)
        return result

    def metrics(self, gathered: dict[str, torch.Tensor]) -> dict[str, float]:
        """``acc@0.5`` (IoU), ``acc@0.5_giou`` (the released rule) and ``mean_iou``, in percent."""
        if "iou" not in gathered:
            raise KeyError("MDETR grounding metrics need `boxes` in the eval batches")
        iou, giou = gathered["iou"].double(), gathered["giou"].double()
        return {"acc@0.5": 100.0 * float((iou >= 0.5).double().mean()),
                "acc@0.5_giou": 100.0 * float((giou >= 0.5).double().mean()),
                "mean_iou": 100.0 * float(iou.mean())}
