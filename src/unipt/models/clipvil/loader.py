"""Build a CLIP-ViL encoder from a released checkpoint (or at random) and wrap it as a named backbone.

``load_backbone("clipvil:<checkpoint>", visual=..., features=..., tokenizer=...)`` (see
:mod:`unipt.backbones`) lands in :func:`load_clipvil_backbone`; run configs pass those keyword options as
``towers.<name>.backbone_options``. ``clipvil:random`` builds random weights of the sizes in ``config``.
"""

from __future__ import annotations

from typing import Any

from unipt.models.clipvil.config import CLIPViLConfig
from unipt.models.clipvil.encoder import CLIPViLBackbone
from unipt.models.clipvil.preprocess import CLIPViLPreprocessor
from unipt.models.clipvil.visual import FeatureFiles, build_visual_encoder
from unipt.models.clipvil.weights import CheckpointParts, load_strict, read_state_dict, split_checkpoint
from unipt.packaged_backbones import Backbone, minilm_path

VISUAL_PREFIX = "encoder.visual_model."


def build_backbone(checkpoint: str, visual: str | None = None,
                   config: dict[str, Any] | None = None) -> tuple[CLIPViLBackbone, CheckpointParts | None]:
    """The frozen encoder with its weights, the optional CLIP image encoder, and the checkpoint's parts.

    Args:
        checkpoint: a released checkpoint path (``.pth`` / ``.bin`` / ``.safetensors``) or ``"random"``.
        visual: ``open_clip:<model>[:<tag>]`` / ``clip-vision:<name>``, or ``None`` (features only).
        config: :class:`CLIPViLConfig` fields: all sizes for ``random``; overrides (e.g. ``num_heads``)
            of what a checkpoint's shapes give.
    """
    parts = None
    if checkpoint == "random":
        backbone = CLIPViLBackbone(CLIPViLConfig.from_dict(dict(config or {})))
    else:
        parts = split_checkpoint(read_state_dict(checkpoint))
        backbone = CLIPViLBackbone(CLIPViLConfig.from_state_dict(parts.backbone, **(config or {})))
        load_strict(backbone, parts.backbone, "CLIP-ViL encoder", checkpoint, skip_prefixes=(VISUAL_PREFIX,))
        backbone.released_side = parts.side or None
    if visual is not None:
        module, source = build_visual_encoder(visual)
        if source == "checkpoint" and parts is not None:
            if not parts.visual:
                raise ValueError(f"{checkpoint} holds no CLIP image weights (encoder.visual_model.visual.*): name "
                                 f"pre-trained ones ({visual}:openai) or use pre-extracted features")
            load_strict(module, parts.visual, f"CLIP image encoder {visual}", checkpoint)
        backbone.attach_visual(module)
    return backbone.requires_grad_(False), parts


def load_tokenizer(name: str) -> Any:
    """A BERT word-piece tokenizer by hub name / folder; ``minilm`` is the packaged MiniLM's (the same
    ``bert-base-uncased`` vocabulary, available offline)."""
    import transformers

    if name.lower() == "minilm":
        name = minilm_path()
    try:
        return transformers.AutoTokenizer.from_pretrained(name)
    except OSError as err:
        raise OSError(f"could not load the CLIP-ViL tokenizer {name!r} (bert-base-uncased, a local folder, or "
                      f"'minilm' for the packaged copy of the same vocabulary): {err}") from err


def load_clipvil_backbone(checkpoint: str, *, visual: str | None = None, features: str | None = None,
                          feature_pattern: str = "{image_id}", tokenizer: str = "bert-base-uncased",
                          max_length: int | None = None, min_size: int = 384, max_size: int = 640,
                          config: dict[str, Any] | None = None) -> Backbone:
    """A :class:`~unipt.backbones.Backbone` for ``clipvil:<checkpoint>``: encoder + whole-record preprocessing.

    Exactly one visual source: ``visual`` (images through a frozen CLIP encoder) or ``features`` (a folder
    of per-image feature files named by ``feature_pattern``).
    """
    if (visual is None) == (features is None):
        raise ValueError("CLIP-ViL needs exactly one visual source: visual='open_clip:RN50x4' (images through "
                         "CLIP; 'clip-vision:<name>' for a ViT) or features='<folder of per-image grids>'")
    model, _ = build_backbone(checkpoint, visual, config)
    words = load_tokenizer(tokenizer)
    if len(words) > model.config.vocab_size:
        raise ValueError(f"tokenizer {tokenizer!r} has {len(words)} tokens but the encoder embeds "
                         f"{model.config.vocab_size}; use the vocabulary it was trained with (bert-base-uncased)")
    prep = CLIPViLPreprocessor(words, max_length or model.config.max_seq_length, min_size, max_size,
                               FeatureFiles(features, feature_pattern) if features is not None else None)
    return Backbone(f"clipvil:{checkpoint}", model, "vision_language", prep)
