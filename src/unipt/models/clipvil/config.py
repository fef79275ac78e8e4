"""CLIPViLConfig: the sizes of the single-stream CLIP-ViL encoder (a 12-layer BERT over text + CLIP grid).

The defaults are the paper's system: BERT-base (``bert-base-uncased`` vocabulary, 768 wide, 12 layers,
12 heads) over ``[text tokens; CLIP-RN50x4 grid cells]`` with learned x/y grid position embeddings
(``--pos_num 25``) added to the 2,560-channel grid before the visual projection, questions cut to 20
word pieces including [CLS] and [SEP]. :meth:`CLIPViLConfig.from_state_dict` reads every size a
checkpoint fixes from its tensor shapes, so released checkpoints need no hand-written config.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import torch

RN50X4_GRID_CHANNELS = 2560


@dataclass
class CLIPViLConfig:
    """Sizes and switches of :class:`~unipt.models.clipvil.encoder.CLIPViLBackbone`.

    Attributes:
        vocab_size / hidden_size / num_layers / num_heads / intermediate_size / max_position_embeddings /
            type_vocab_size: the BERT encoder (LXMERT-style layer names).
        hidden_dropout / attention_dropout: BERT dropouts (active only while the frozen encoder runs in
            train mode, i.e. ``keep_backbone_dropout``).
        visual_feat_dim: channels of one visual token before ``visn_fc`` (2,560 for CLIP-RN50x4 grids,
            768 for CLIP-ViT-B/32 tokens).
        visual_pos_dim: width of the (unused here) box input of ``visn_fc``; kept for the key layout.
        grid_positions: ``pos_num``: rows of the learned x and y grid position tables; 0 = no grid
            position embedding (the released ViT variant).
        max_seq_length: text length including [CLS] and [SEP]; questions are padded to it.
        layer_norm_eps: BERT's LayerNorm eps.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    visual_feat_dim: int = RN50X4_GRID_CHANNELS
    visual_pos_dim: int = 4
    grid_positions: int = 25
    max_seq_length: int = 20
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.max_seq_length < 2:
            raise ValueError("max_seq_length must leave room for [CLS] and [SEP] (>= 2)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CLIPViLConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown CLIP-ViL config fields {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], **overrides: Any) -> CLIPViLConfig:
        """Sizes read from a backbone state dict in the product layout (``embeddings.*``, ``encoder.*``).

        ``num_heads`` cannot be read from shapes: it defaults to ``hidden_size // 64`` (12 for BERT-base)
        unless given in ``overrides``.
        """
        def shape(key: str) -> torch.Size:
            if key not in state:
                raise KeyError(f"the checkpoint has no {key!r}: it is not a CLIP-ViL / LXMERT encoder")
            return state[key].shape

        vocab, hidden = shape("embeddings.word_embeddings.weight")
        layers = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}
        if not layers:
            raise KeyError("the checkpoint has no encoder.layer.* weights: it is not a CLIP-ViL / LXMERT encoder")
        values: dict[str, Any] = dict(
            vocab_size=vocab,
            hidden_size=hidden,
            num_layers=max(layers) + 1,
            num_heads=max(1, hidden // 64),
            intermediate_size=shape("encoder.layer.0.intermediate.dense.weight")[0],
            max_position_embeddings=shape("embeddings.position_embeddings.weight")[0],
            type_vocab_size=shape("embeddings.token_type_embeddings.weight")[0],
            visual_feat_dim=shape("encoder.visn_fc.visn_fc.weight")[1],
            visual_pos_dim=shape("encoder.visn_fc.box_fc.weight")[1],
            grid_positions=(state["encoder.visual_pos.x_position_embedding.weight"].shape[0]
                            if "encoder.visual_pos.x_position_embedding.weight" in state else 0),
        )
        values.update(overrides)
        return cls.from_dict(values)
