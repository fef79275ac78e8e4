"""CLIPViLForQuestionAnswering: the whole released system for VQA / GQA, loadable from released files.

``model = CLIPViLForQuestionAnswering.from_released(path, visual="open_clip:RN50x4", ...)`` reads a
pre-training checkpoint (the encoder, plus the pre-trained QA head for answer-table surgery) or a
fine-tuned VQA / GQA checkpoint (encoder, its ``logit_fc``, and a UniPT run's side network), and
``model(**inputs)`` gives ``[B, A]`` answer logits. :meth:`released_state_dict` writes the released
fine-tuned layout back, so weights trained here load in the released code as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from unipt.config import UniPTConfig
from unipt.models.clipvil.adapted import CLIPViLUniPT
from unipt.models.clipvil.answers import SurgeryReport, answer_head_surgery, load_answer_table
from unipt.models.clipvil.encoder import CLIPViLBackbone, _bert_init
from unipt.models.clipvil.loader import VISUAL_PREFIX, build_backbone
from unipt.models.clipvil.weights import load_strict, to_released
from unipt.tasks.vqa import AnswerHead


@dataclass
class LoadReport:
    """What :meth:`CLIPViLForQuestionAnswering.from_released` did with every part of the file."""

    layout: str
    side: str
    head: str
    ignored: dict[str, str] = field(default_factory=dict)
    surgery: SurgeryReport | None = None

    def __str__(self) -> str:
        reasons = sorted(set(self.ignored.values()))
        return (f"{self.layout} checkpoint; side network: {self.side}; answer head: {self.head}; "
                f"{len(self.ignored)} keys not loaded ({'; '.join(reasons) or 'none'})")


class CLIPViLForQuestionAnswering(nn.Module):
    """Frozen CLIP-ViL encoder + UniPT side network + frozen pooler + trainable ``logit_fc``.

    Args:
        backbone: the frozen encoder (with its visual side attached, or fed ``visual_feats``).
        num_answers: rows of the answer head.
        unipt: the side network's config (default: the ``clipvil`` preset).
    """

    def __init__(self, backbone: CLIPViLBackbone, num_answers: int, unipt: UniPTConfig | None = None):
        super().__init__()
        self.unipt = CLIPViLUniPT(backbone, unipt)
        self.logit_fc = AnswerHead(backbone.config.hidden_size, num_answers)
        self.logit_fc.apply(_bert_init)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Backbone keyword inputs (``input_ids``, ``attention_mask``, ``pixel_values`` | ``visual_feats``...)
        -> ``[B, A]`` answer logits."""
        return self.logit_fc(self.unipt(**inputs).pooled)

    @classmethod
    def from_released(
        cls,
        checkpoint: str,
        *,
        visual: str | None = None,
        answers: list[str] | None = None,
        answer_table: str | None = None,
        unipt: UniPTConfig | None = None,
        config: dict | None = None,
    ) -> tuple[CLIPViLForQuestionAnswering, LoadReport]:
        """Load a released checkpoint.

        Args:
            checkpoint: pre-training (``bert.*`` ...) or fine-tuned (``lxrt_encoder.model.bert.*`` ...) file.
            visual: the CLIP image encoder (``open_clip:RN50x4`` takes its weights from the file), or
                ``None`` to feed pre-extracted ``visual_feats``.
            answers: the task's answers, one per head row. Required for a pre-training checkpoint; for a
                fine-tuned one they must match its head's size.
            answer_table: the pre-trained head's answer table (LXMERT's ``all_ans.json``) for surgery.
            unipt / config: side-network config; encoder config overrides (e.g. ``num_heads``).
        """
        backbone, parts = build_backbone(checkpoint, visual, config)
        assert parts is not None
        if parts.head:
            rows = parts.head["3.weight"].shape[0]
            if answers is not None and len(answers) != rows:
                raise ValueError(f"{checkpoint} has an answer head over {rows} answers; {len(answers)} were given")
            model = cls(backbone, rows, unipt)
            load_strict(model.logit_fc, parts.head, "answer head logit_fc", checkpoint)
            head, surgery = f"fine-tuned ({rows} answers)", None
        else:
            if answers is None:
                raise ValueError(f"{checkpoint} is a pre-training checkpoint: pass answers=[...] (the task's answer "
                                 "list) to build the answer head")
            model = cls(backbone, len(answers), unipt)
            surgery = None
            if parts.pretrained_answer_head and answer_table is not None:
                surgery = answer_head_surgery(model.logit_fc, parts.pretrained_answer_head,
                                              load_answer_table(answer_table), answers)
                head = f"answer-table surgery: {surgery}"
            elif parts.pretrained_answer_head:
                head = "BERT-initialised (pass answer_table= to copy the pre-trained QA head's rows)"
            else:
                head = "BERT-initialised (the checkpoint has no pre-trained QA head)"
        side = "loaded" if parts.side else "new (BERT init)"
        return model, LoadReport(parts.layout, side, head, dict(parts.ignored), surgery)

    def released_state_dict(self, with_visual: bool = True) -> dict[str, torch.Tensor]:
        """Everything in the released fine-tuned layout (``lxrt_encoder.model.bert.*`` + ``logit_fc.*``)."""
        backbone = self.unipt.backbone
        own = {k: v for k, v in backbone.state_dict().items() if not k.startswith(VISUAL_PREFIX)}
        visual = {k[len(VISUAL_PREFIX):]: v for k, v in backbone.state_dict().items()
                  if k.startswith(VISUAL_PREFIX + "visual.")}  # only the OpenAI-layout CLIP tower has a released name
        return to_released(own, self.unipt.side.state_dict(), self.logit_fc.state_dict(), backbone.config.num_layers,
                           visual if with_visual else None)
