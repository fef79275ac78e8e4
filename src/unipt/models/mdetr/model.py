"""MDETR (Kamath et al., ICCV 2021) as a module whose state dict loads the released checkpoints.

Top-level keys, as released: ``backbone.0.body.*`` (image body), ``input_proj`` (1x1 conv to ``D``),
``query_embed`` (``Q`` learned query positions), ``transformer.*`` (text encoder, resizer, joint
encoder, decoder), ``class_embed``, ``bbox_embed.layers.<i>``, ``contrastive_align_projection_{image,
text}`` and, only with the image-text contrastive loss, ``contrastive_projection_{image,text}``.

``MDETR(...)(pixel_values, pixel_mask, input_ids, attention_mask)`` returns an :class:`MDETROutput`
with the released predictions (``pred_logits``, ``pred_boxes``, alignment projections, one entry per
decoder layer) and what UniPT's ``mdetr`` preset taps: the encoder input and its 6 layer outputs
(``encoder_hidden_states``, masked by ``encoder_attention_mask``) and the zero decoder input followed
by its 6 normed layer outputs (``decoder_hidden_states``). ``head_inputs`` carries the encoded text
tokens the alignment head reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unipt.models.mdetr.config import MDETRConfig
from unipt.models.mdetr.image import ImageBackbone, resnet_body, timm_body
from unipt.models.mdetr.transformer import EncoderStates, MDETRTransformer
from unipt.tasks.grounding import MLP
from unipt.tasks.mdetr_heads import HeadOutputs, head_outputs

HEAD_MODULES = ("class_embed", "bbox_embed", "contrastive_align_projection_image", "contrastive_align_projection_text")


@dataclass
class MDETROutput:
    """One forward pass of MDETR.

    Attributes:
        heads: predictions of every decoder layer (``[k, B, ...]``, final layer last).
        encoder_hidden_states: ``enc_layers + 1`` tensors ``[B, L, D]`` (joint input, then each layer).
        decoder_hidden_states: ``dec_layers + 1`` tensors ``[B, Q, D]`` (zero input, then each normed layer).
        encoder_attention_mask: ``[B, L]`` 1 for real tokens.
        head_inputs: ``{"text_memory": [B, T, D], "text_mask": [B, T]}``, frozen outputs a head reads.
        text_pooled: RoBERTa's pooled output (image-text contrastive head only).
    """

    heads: HeadOutputs
    encoder_hidden_states: tuple[torch.Tensor, ...]
    decoder_hidden_states: tuple[torch.Tensor, ...]
    encoder_attention_mask: torch.Tensor
    head_inputs: dict[str, torch.Tensor]
    text_pooled: torch.Tensor | None = None

    @property
    def pred_logits(self) -> torch.Tensor:
        """``[B, Q, C + 1]`` of the final decoder layer."""
        return self.heads.logits[-1]

    @property
    def pred_boxes(self) -> torch.Tensor:
        """``[B, Q, 4]`` normalised ``cxcywh`` boxes of the final decoder layer."""
        return self.heads.boxes[-1]


def build_image_body(config: MDETRConfig) -> nn.Module:
    """The image body named by ``config.image_body`` (``resnet`` or ``timm:<name>``)."""
    if config.image_body == "resnet":
        return resnet_body(config.resnet)
    if config.image_body.startswith("timm:"):
        return timm_body(config.image_body.split(":", 1)[1])
    raise ValueError(
        f"MDETRConfig.image_body={config.image_body!r} cannot be built by name; pass the module as "
        "MDETR(config, image_body=...) (any module mapping [B, 3, H, W] to [B, C, h, w])"
    )


class MDETR(nn.Module):
    """The full MDETR network (see the module docstring).

    Args:
        config: sizes (:class:`MDETRConfig`).
        image_body: the CNN under ``backbone.0.body``; built from ``config.image_body`` when ``None``.
    """

    def __init__(self, config: MDETRConfig | None = None, image_body: nn.Module | None = None):
        super().__init__()
        config = config or MDETRConfig()
        self.config = config
        width = config.hidden_dim
        self.transformer = MDETRTransformer(config)
        self.class_embed = nn.Linear(width, config.num_classes + 1)
        self.bbox_embed = MLP(width, width, 4, 3)
        self.query_embed = nn.Embedding(config.num_queries, width)
        self.input_proj = nn.Conv2d(config.body_channels, width, kernel_size=1)
        self.backbone = ImageBackbone(image_body if image_body is not None else build_image_body(config), width)
        if config.contrastive_loss:
            self.contrastive_projection_image = nn.Linear(width, config.contrastive_hdim, bias=False)
            self.contrastive_projection_text = nn.Linear(config.text.hidden_size, config.contrastive_hdim, bias=False)
        if config.contrastive_align:
            self.contrastive_align_projection_image = nn.Linear(width, config.contrastive_hdim)
            self.contrastive_align_projection_text = nn.Linear(width, config.contrastive_hdim)

    def encode(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None, input_ids: torch.Tensor,
               attention_mask: torch.Tensor) -> EncoderStates:
        """Image ``[B, 3, H, W]`` (+ ``pixel_mask`` ``[B, H, W]``, 1 = real) and text ``[B, T]`` -> encoder states."""
        features, mask, pos = self.backbone(pixel_values, pixel_mask)
        src = self.input_proj(features).flatten(2).transpose(1, 2)  # [B, h*w, D]
        return self.transformer.encode(src, mask.flatten(1), pos.flatten(2).transpose(1, 2), input_ids, attention_mask)

    def heads(self, hidden: torch.Tensor, text_memory: torch.Tensor | None) -> HeadOutputs:
        """The released heads on decoder outputs ``[k, B, Q, D]``."""
        return head_outputs(self, hidden, text_memory)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors of the four prediction heads, keyed as in :class:`~unipt.tasks.mdetr_heads.MDETRHeads`."""
        return {k: v for k, v in self.state_dict().items() if k.split(".", 1)[0] in HEAD_MODULES}

    def forward(
        self,
        pixel_values: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = True,
        return_dict: bool = True,
    ) -> MDETROutput:
        """Run MDETR. Without text (a shape probe) the caption is just RoBERTa's ``<s></s>``.

        ``output_hidden_states`` / ``return_dict`` are accepted for the Hugging Face calling convention;
        the hidden states are always returned.
        """
        del output_hidden_states, return_dict
        if input_ids is None:
            input_ids = torch.tensor([[0, 2]], device=pixel_values.device).expand(pixel_values.shape[0], -1)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        states = self.encode(pixel_values, pixel_mask, input_ids, attention_mask)
        decoded = self.transformer.decode(states, self.query_embed.weight)
        heads = self.heads(torch.stack(decoded[1:]), states.text_memory)
        return MDETROutput(
            heads=heads,
            encoder_hidden_states=tuple(states.hidden),
            decoder_hidden_states=tuple(decoded),
            encoder_attention_mask=states.mask,
            head_inputs={"text_memory": states.text_memory, "text_mask": states.text_mask},
            text_pooled=states.text_pooled,
        )
