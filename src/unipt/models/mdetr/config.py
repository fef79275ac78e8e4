"""MDETR's sizes as typed dataclasses (defaults = the released RefCOCO recipe; its loss settings are
:class:`unipt.tasks.mdetr_losses.MDETRLossConfig`, beside the losses).

The defaults reproduce ``ashkamath/mdetr``'s ``main.py`` defaults with the hub models' choices
(``num_classes=255``, contrastive-alignment head of width 64, no image-text contrastive loss).
When a released checkpoint is loaded, the sizes are read from its tensors instead
(:func:`unipt.models.mdetr.weights.config_from_state_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from transformers import RobertaConfig


@dataclass(frozen=True)
class TextEncoderConfig:
    """The RoBERTa text encoder: a Hugging Face ``RobertaConfig``'s size fields.

    ``roberta-base`` is the default; ``distilroberta-base`` (6 layers) and ``roberta-large`` (1024 wide,
    24 layers, 16 heads) are the other encoders the released code accepts.
    """

    vocab_size: int = 50265
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    pad_token_id: int = 1
    layer_norm_eps: float = 1e-5
    add_pooling_layer: bool = True

    def to_hf(self) -> RobertaConfig:
        """The matching ``transformers.RobertaConfig``."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if k != "add_pooling_layer"}
        return RobertaConfig(**values, bos_token_id=0, eos_token_id=2)


@dataclass(frozen=True)
class ResNetBodyConfig:
    """A torchvision-layout ResNet (bottleneck blocks, frozen BatchNorm): ResNet-101 by default.

    ``depths``: blocks per stage (ResNet-50: 3, 4, 6, 3); ``widths``: bottleneck widths per stage;
    ``stem``: channels of the 7x7 stem; ``expansion``: output channels = width x expansion.
    """

    depths: tuple[int, int, int, int] = (3, 4, 23, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    stem: int = 64
    expansion: int = 4

    @property
    def out_channels(self) -> int:
        return self.widths[-1] * self.expansion


@dataclass(frozen=True)
class MDETRConfig:
    """Sizes of the MDETR network.

    Attributes:
        hidden_dim: transformer width ``D`` (256).
        nheads: attention heads (8).
        enc_layers / dec_layers: encoder / decoder depth (6 + 6).
        dim_feedforward: FFN width (2048).
        dropout: dropout in the transformer and the text resizer (0.1).
        num_queries: object queries (100).
        num_classes: soft-token classes; the classifier has ``num_classes + 1`` outputs, the last one
            "no object" (255: token positions 0..254).
        contrastive_hdim: width of the contrastive-alignment projections (64).
        contrastive_align: build the box-token contrastive-alignment heads (on in every release).
        contrastive_loss: build the image-text contrastive head (``transformer.CLS`` and
            ``contrastive_projection_*``; off in the released fine-tuned and hub models).
        image_body: ``resnet`` (torchvision layout, see ``resnet``) or ``timm:<name>`` (e.g.
            ``timm:tf_efficientnet_b3_ns``, needs the ``vision`` extra) or ``custom`` (a module given to
            :class:`~unipt.models.mdetr.model.MDETR`).
        body_channels: channels of the image body's last map (2048 for ResNet-101, 384 for EfficientNet-B3).
        resnet: the ResNet layout when ``image_body == "resnet"``.
        text: the RoBERTa encoder's sizes.
    """

    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    num_queries: int = 100
    num_classes: int = 255
    contrastive_hdim: int = 64
    contrastive_align: bool = True
    contrastive_loss: bool = False
    image_body: str = "resnet"
    body_channels: int = 2048
    resnet: ResNetBodyConfig = field(default_factory=ResNetBodyConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)

    def __post_init__(self) -> None:
        if self.hidden_dim % self.nheads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by nheads {self.nheads}")
        if self.hidden_dim % 2:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be even (sine positions use D / 2 per axis)")
        if self.image_body == "resnet" and self.body_channels != self.resnet.out_channels:
            raise ValueError(
                f"body_channels {self.body_channels} != the ResNet's output channels {self.resnet.out_channels}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MDETRConfig:
        values = dict(data)
        if "resnet" in values:
            resnet = {k: tuple(v) if isinstance(v, list) else v for k, v in values["resnet"].items()}
            values["resnet"] = ResNetBodyConfig(**resnet)
        if "text" in values:
            values["text"] = TextEncoderConfig(**values["text"])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown MDETRConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)
