"""The frozen single-stream CLIP-ViL encoder: a BERT-style Transformer over ``[text; visual grid]``.

Reading order (``B`` batch, ``Lt`` text tokens, ``Lv`` visual tokens, ``D`` width)::

    text   = embeddings(input_ids)                       [B, Lt, D]   word + position + type, LN
    grid   = visual encoder(pixels) or features          [B, C, H, W] (+ x/y grid positions) -> [B, Lv, C]
    visual = visn_fc(grid)                               [B, Lv, D]   Linear + LN (no box input)
    H_0    = [text; visual]                              [B, Lt+Lv, D]
    H_i    = layer_i(H_{i-1}, mask)   i = 1..12          BERT post-norm layers, erf GELU
    pooled = pooler(H_12[:, 0])                          dense on [CLS], no tanh (as released)

Module names follow the released LXMERT-style code (``embeddings``, ``encoder.visn_fc``,
``encoder.layer.<i>.attention.self.query`` ..., ``encoder.visual_pos``, ``encoder.visual_model.visual``,
``pooler.dense``), so a released state dict maps onto this module by stripping its prefix
(:mod:`unipt.models.clipvil.weights`). The layers are written here rather than borrowed from
``transformers.BertLayer``: that class's call convention and mask format change across major versions,
and the released behaviour (additive -10000 mask, erf GELU, pooler without tanh) must stay fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unipt.models.clipvil.config import CLIPViLConfig

MASK_VALUE = -10000.0  # the released additive attention mask for padded keys


@dataclass
class CLIPViLOutput:
    """What one encoder forward returns.

    Attributes:
        last_hidden_state: ``[B, Lt+Lv, D]`` the final layer over the joint sequence.
        hidden_states: ``(H_0, ..., H_N)``: the joint embedding and every layer's output (UniPT's taps).
        attention_mask: ``[B, Lt+Lv]`` 1 for real tokens (text padding and padded grid cells are 0).
        pooler_output: ``[B, D]`` the frozen pooler on the final layer's [CLS].
        text_length: ``Lt``; the joint sequence splits back into text ``[:Lt]`` and visual ``[Lt:]``.
    """

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...]
    attention_mask: torch.Tensor
    pooler_output: torch.Tensor
    text_length: int


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product attention with separate ``query`` / ``key`` / ``value`` maps."""

    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        width = config.hidden_size
        self.heads = config.num_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.dropout_p = config.attention_dropout

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, L, D]``, ``additive_mask`` ``[B, 1, 1, L]`` (0 or -10000) -> ``[B, L, D]``."""
        b, length, width = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.heads, width // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=additive_mask.to(x.dtype),
            dropout_p=self.dropout_p if self.training else 0.0,
        )
        return out.transpose(1, 2).reshape(b, length, width)


class ResidualOutput(nn.Module):
    """``LayerNorm(dropout(dense(h)) + residual)``: BERT's post-norm sub-layer output."""

    def __init__(self, in_width: int, config: CLIPViLConfig):
        super().__init__()
        self.dense = nn.Linear(in_width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class AttentionBlock(nn.Module):
    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        self.self = SelfAttention(config)
        self.output = ResidualOutput(config.hidden_size, config)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, additive_mask), x)


class Intermediate(nn.Module):
    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # erf GELU, as BERT / LXMERT


class EncoderLayer(nn.Module):
    """One BERT layer: self-attention, then the feed-forward block, each post-norm with a residual."""

    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        self.attention = AttentionBlock(config)
        self.intermediate = Intermediate(config)
        self.output = ResidualOutput(config.intermediate_size, config)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(x, additive_mask)
        return self.output(self.intermediate(attended), attended)


class TextEmbeddings(nn.Module):
    """Word + position + token-type embeddings, LayerNorm, dropout: ``[B, Lt]`` ids -> ``[B, Lt, D]``."""

    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        width = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=0)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, width, padding_idx=0)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width, padding_idx=0)
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(types)
        return self.dropout(self.LayerNorm(x))


class VisualFeatEncoder(nn.Module):
    """``visn_fc``: visual tokens ``[B, Lv, C]`` -> Linear + LayerNorm + dropout -> ``[B, Lv, D]``.

    ``box_fc`` / ``box_layer_norm`` exist for the key layout only: CLIP-ViL feeds grid cells without
    boxes, so the released forward never calls them either.
    """

    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        width = config.hidden_size
        self.visn_fc = nn.Linear(config.visual_feat_dim, width)
        self.visn_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.box_fc = nn.Linear(config.visual_pos_dim, width)
        self.box_layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.visn_layer_norm(self.visn_fc(feats)))


class GridPositionEmbedding(nn.Module):
    """Learned row / column tables added to a grid ``[B, C, H, W]`` -> tokens ``[B, H*W, C]`` (row-major).

    Cell ``(i, j)`` gets ``x_position_embedding[i] + y_position_embedding[j]``: the released code calls the
    first spatial axis "width" and indexes the ``x`` table with it, so ``x`` runs over rows here.
    """

    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        self.x_position_embedding = nn.Embedding(config.grid_positions, config.visual_feat_dim)
        self.y_position_embedding = nn.Embedding(config.grid_positions, config.visual_feat_dim)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        _, channels, rows, cols = grid.shape
        limit = self.x_position_embedding.num_embeddings
        if rows > limit or cols > limit:
            raise ValueError(f"visual grid {rows}x{cols} is larger than the {limit}x{limit} position tables "
                             "(pos_num); use smaller images or features")
        device = grid.device
        x = self.x_position_embedding(torch.arange(rows, device=device))[:, None, :]
        y = self.y_position_embedding(torch.arange(cols, device=device))[None, :, :]
        positions = (x + y).reshape(1, rows * cols, channels)
        return grid.flatten(2).transpose(1, 2) + positions.to(grid.dtype)


class JointEncoder(nn.Module):
    """``visn_fc`` + the BERT layers (+ grid positions, + the optional CLIP image encoder ``visual_model``)."""

    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        self.visn_fc = VisualFeatEncoder(config)
        self.layer = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))
        self.visual_pos = GridPositionEmbedding(config) if config.grid_positions > 0 else None
        self.visual_model: nn.Module | None = None  # set by attach_visual (CLIP RN grid / ViT tokens)


class Pooler(nn.Module):
    """``dense`` on token 0 with no activation: the released CLIP-ViL comments BERT's tanh out."""

    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.dense(hidden[:, 0])


class CLIPViLBackbone(nn.Module):
    """The frozen encoder UniPT adapts (``clipvil`` preset): 13 joint hidden states of width ``D``.

    Visual input is one of:
        ``pixel_values`` ``[B, 3, H, W]``: run through ``encoder.visual_model`` (see :func:`attach_visual`);
        ``visual_feats`` ``[B, C, h, w]`` grid or ``[B, Lv, C]`` tokens, e.g. pre-extracted from files,
        with ``visual_mask`` ``[B, h*w]`` / ``[B, Lv]`` marking padded cells 0.
    """

    def __init__(self, config: CLIPViLConfig):
        super().__init__()
        self.config = config
        self.embeddings = TextEmbeddings(config)
        self.encoder = JointEncoder(config)
        self.pooler = Pooler(config)
        self.released_side: dict[str, torch.Tensor] | None = None  # a released UniPT run's side weights
        self.apply(_bert_init)

    # ----------------------------------------------------------------------------------- visual side
    def attach_visual(self, visual_model: nn.Module) -> None:
        """Use ``visual_model`` (``grid(pixels) -> [B, C, h, w] | [B, Lv, C]``, attribute ``feature_dim``)."""
        dim = getattr(visual_model, "feature_dim", None)
        if dim != self.config.visual_feat_dim:
            raise ValueError(f"the visual encoder gives {dim}-channel features but visn_fc reads "
                             f"{self.config.visual_feat_dim}; pick the CLIP model the checkpoint was trained with")
        self.encoder.visual_model = visual_model.eval()

    def train(self, mode: bool = True) -> CLIPViLBackbone:
        """Train mode only switches dropout; the CLIP image encoder always stays in eval mode."""
        super().train(mode)
        if self.encoder.visual_model is not None:
            self.encoder.visual_model.eval()  # its BatchNorm statistics stay frozen (see docs/paper.md)
        return self

    def visual_tokens(self, pixel_values: torch.Tensor | None, visual_feats: torch.Tensor | None) -> torch.Tensor:
        """``[B, Lv, C]`` visual tokens (grids get their x/y positions first)."""
        if (pixel_values is None) == (visual_feats is None):
            raise ValueError("pass exactly one of pixel_values (images) or visual_feats (pre-extracted features)")
        if pixel_values is not None:
            if self.encoder.visual_model is None:
                raise ValueError("this CLIP-ViL encoder has no image encoder: load it with visual='open_clip:RN50x4' "
                                 "or 'clip-vision:<model>', or feed pre-extracted visual_feats")
            visual_feats = self.encoder.visual_model.grid(pixel_values)
        assert visual_feats is not None
        channels = visual_feats.shape[1] if visual_feats.dim() == 4 else visual_feats.shape[-1]
        if channels != self.config.visual_feat_dim:
            raise ValueError(f"visual features have {channels} channels, visn_fc reads {self.config.visual_feat_dim}")
        if visual_feats.dim() == 4:
            if self.encoder.visual_pos is None:
                return visual_feats.flatten(2).transpose(1, 2)
            return self.encoder.visual_pos(visual_feats)
        if visual_feats.dim() != 3:
            raise ValueError(f"visual_feats must be [B, C, h, w] grids or [B, Lv, C] tokens, "
                             f"got {tuple(visual_feats.shape)}")
        return visual_feats

    # ----------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        visual_feats: torch.Tensor | None = None,
        visual_mask: torch.Tensor | None = None,
        output_hidden_states: bool = True,
        return_dict: bool = True,
    ) -> CLIPViLOutput:
        """Run the joint encoder (every hidden state is always returned; the two flags exist for callers
        that speak the Hugging Face convention)."""
        text = self.embeddings(input_ids, token_type_ids)
        visual = self.encoder.visn_fc(self.visual_tokens(pixel_values, visual_feats).to(text.dtype))
        text_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if visual_mask is None:
            visual_mask = torch.ones(visual.shape[:2], dtype=text_mask.dtype, device=visual.device)
        if tuple(visual_mask.shape) != tuple(visual.shape[:2]):
            raise ValueError(f"visual_mask {tuple(visual_mask.shape)} does not match {visual.shape[1]} visual tokens")
        mask = torch.cat([text_mask.to(visual_mask.dtype), visual_mask], dim=1)
        additive = (1.0 - mask[:, None, None, :].to(text.dtype)) * MASK_VALUE
        hidden = [torch.cat([text, visual], dim=1)]
        for layer in self.encoder.layer:
            hidden.append(layer(hidden[-1], additive))
        return CLIPViLOutput(hidden[-1], tuple(hidden), mask, self.pooler(hidden[-1]), text.shape[1])

    def example_inputs(self) -> dict[str, torch.Tensor]:
        """A tiny batch (2 words, a 2x2 feature grid) to discover tap shapes without images."""
        device = self.pooler.dense.weight.device
        ids = torch.tensor([[1, 2, 3, 0]], device=device)
        feats = torch.zeros(1, self.config.visual_feat_dim, 2, 2, device=device)
        return {"input_ids": ids, "attention_mask": (ids != 0).long(), "visual_feats": feats}


@torch.no_grad()
def _bert_init(module: nn.Module) -> None:
    """BERT's initialisation (N(0, 0.02) matrices, zero biases, unit LayerNorm) for randomly built encoders."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.normal_(0.0, 0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.zero_()
    if isinstance(module, nn.LayerNorm):
        module.weight.fill_(1.0)
        module.bias.zero_()
