"""MDETR's transformer: a RoBERTa text encoder, a joint image+text encoder and a query decoder.

DETR's post-norm layers with positions added to queries and keys at every attention; MDETR's decoder
layer is self-attention -> cross-attention to the joint memory (``cross_attn_image``) -> FFN, with
norms ``norm1``, ``norm3``, ``norm4`` (its text cross-attention and ``norm2`` were removed before
release). Every decoder output passes the shared final ``decoder.norm``. Tensors are batch-first here
(``[B, L, D]``); ``nn.MultiheadAttention``'s parameter names do not depend on that, so the state-dict
keys are the released ones: ``encoder.layers.<i>.self_attn.in_proj_weight``, ``linear1``, ``norm1``...,
``text_encoder.*`` (a Hugging Face ``RobertaModel``), ``resizer.fc`` / ``resizer.layer_norm``, ``CLS``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import RobertaModel

from unipt.models.mdetr.config import MDETRConfig


def _with_pos(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return x if pos is None else x + pos


class EncoderLayer(nn.Module):
    """Post-norm self-attention + FFN over ``[B, L, D]`` (positions on queries and keys only)."""

    def __init__(self, width: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(width, ffn)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn, width)
        self.norm1 = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, padding: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``src`` / ``pos`` ``[B, L, D]``, ``padding`` ``[B, L]`` (True = padded) -> ``[B, L, D]``."""
        q = k = _with_pos(src, pos)
        src = self.norm1(src + self.dropout1(self.self_attn(q, k, src, key_padding_mask=padding)[0]))
        return self.norm2(src + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(src))))))


class DecoderLayer(nn.Module):
    """Post-norm query self-attention -> cross-attention to the memory -> FFN over ``[B, Q, D]``."""

    def __init__(self, width: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.cross_attn_image = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(width, ffn)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn, width)
        self.norm1 = nn.LayerNorm(width)
        self.norm3 = nn.LayerNorm(width)
        self.norm4 = nn.LayerNorm(width)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.dropout4 = nn.Dropout(dropout)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, padding: torch.Tensor, pos: torch.Tensor,
                query_pos: torch.Tensor) -> torch.Tensor:
        """``tgt`` / ``query_pos`` ``[B, Q, D]``; ``memory`` / ``pos`` ``[B, L, D]``; ``padding`` ``[B, L]``."""
        q = k = _with_pos(tgt, query_pos)
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, tgt)[0]))
        attended = self.cross_attn_image(_with_pos(tgt, query_pos), _with_pos(memory, pos), memory,
                                         key_padding_mask=padding)[0]
        tgt = self.norm3(tgt + self.dropout3(attended))
        return self.norm4(tgt + self.dropout4(self.linear2(self.dropout(F.relu(self.linear1(tgt))))))


class Encoder(nn.Module):
    """``layers.<i>``: a stack of :class:`EncoderLayer`; returns every layer's output."""

    def __init__(self, layer: EncoderLayer, depth: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(depth))

    def forward(self, src: torch.Tensor, padding: torch.Tensor, pos: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            src = layer(src, padding, pos)
            outputs.append(src)
        return outputs


class Decoder(nn.Module):
    """``layers.<i>`` + ``norm``: every layer's output goes through the shared final LayerNorm."""

    def __init__(self, layer: DecoderLayer, depth: int, width: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, padding: torch.Tensor, pos: torch.Tensor,
                query_pos: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, padding, pos, query_pos)
            outputs.append(self.norm(tgt))
        return outputs


class FeatureResizer(nn.Module):
    """Text features to the transformer width: ``Linear -> LayerNorm(eps 1e-12) -> Dropout``."""

    def __init__(self, in_width: int, out_width: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(in_width, out_width)
        self.layer_norm = nn.LayerNorm(out_width, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.layer_norm(self.fc(x)))


@dataclass
class EncoderStates:
    """What the joint encoder produced.

    Attributes:
        hidden: ``enc_layers + 1`` tensors ``[B, L, D]``: the encoder input (image tokens, then the
            resized text tokens) and every layer's output; ``L = (1 if CLS) + h*w + T``.
        mask: ``[B, L]`` 1 for real tokens (image cells inside the unpadded image, real text tokens).
        pos: ``[B, L, D]`` positions (sine for image cells, zero for CLS and text tokens).
        text_length: T, the text tokens at the end of the sequence.
        text_pooled: RoBERTa's pooler output ``[B, 768]`` (only used by the image-text contrastive head).
    """

    hidden: list[torch.Tensor]
    mask: torch.Tensor
    pos: torch.Tensor
    text_length: int
    text_pooled: torch.Tensor | None = None

    @property
    def memory(self) -> torch.Tensor:
        """The final encoder output ``[B, L, D]`` that the decoder reads."""
        return self.hidden[-1]

    @property
    def text_memory(self) -> torch.Tensor:
        """The encoded text tokens ``[B, T, D]`` (contrastive alignment reads them)."""
        return self.memory[:, self.memory.shape[1] - self.text_length:]

    @property
    def text_mask(self) -> torch.Tensor:
        return self.mask[:, self.mask.shape[1] - self.text_length:]


class MDETRTransformer(nn.Module):
    """Text encoder + resizer + joint encoder + decoder (keys as released under ``transformer.``)."""

    def __init__(self, config: MDETRConfig):
        super().__init__()
        width = config.hidden_dim
        self.encoder = Encoder(EncoderLayer(width, config.nheads, config.dim_feedforward, config.dropout),
                               config.enc_layers)
        self.decoder = Decoder(DecoderLayer(width, config.nheads, config.dim_feedforward, config.dropout),
                               config.dec_layers, width)
        self.CLS = nn.Embedding(1, width) if config.contrastive_loss else None
        for p in self.parameters():  # the released init, before the pre-trained text encoder is attached
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.text_encoder = RobertaModel(config.text.to_hf(), add_pooling_layer=config.text.add_pooling_layer)
        self.resizer = FeatureResizer(config.text.hidden_size, width, config.dropout)
        self.width = width

    def encode(self, src: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, input_ids: torch.Tensor,
               attention_mask: torch.Tensor) -> EncoderStates:
        """``src`` / ``pos`` ``[B, h*w, D]`` image tokens, ``mask`` ``[B, h*w]`` (1 = real);
        ``input_ids`` / ``attention_mask`` ``[B, T]``."""
        batch = src.shape[0]
        if self.CLS is not None:  # a learned token for the image-text contrastive loss, with zero position
            src = torch.cat([self.CLS.weight.expand(batch, 1, -1), src], 1)
            pos = torch.cat([pos.new_zeros(batch, 1, pos.shape[-1]), pos], 1)
            mask = torch.cat([mask.new_ones(batch, 1), mask], 1)
        text = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
        tokens = self.resizer(text.last_hidden_state)
        src = torch.cat([src, tokens], 1)
        mask = torch.cat([mask.to(attention_mask.dtype), attention_mask], 1)
        pos = torch.cat([pos, torch.zeros_like(tokens)], 1)
        hidden = [src, *self.encoder(src, mask == 0, pos)]
        pooled = getattr(text, "pooler_output", None) if self.CLS is not None else None
        return EncoderStates(hidden, mask, pos, tokens.shape[1], pooled)

    def decode(self, states: EncoderStates, query_embed: torch.Tensor) -> list[torch.Tensor]:
        """``dec_layers + 1`` tensors ``[B, Q, D]``: the zero decoder input, then every normed layer output."""
        memory = states.memory
        query_pos = query_embed.unsqueeze(0).expand(memory.shape[0], -1, -1)
        tgt = torch.zeros_like(query_pos)
        return [tgt, *self.decoder(tgt, memory, states.mask == 0, states.pos, query_pos)]
