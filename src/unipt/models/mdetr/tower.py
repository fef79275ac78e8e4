"""``mdetr:<checkpoint>`` as a training-system backbone: the loaded MDETR + its preprocessing.

The checkpoint is a released ``.pth``, a safetensors file written by
:func:`~unipt.models.mdetr.weights.save_mdetr`, or a folder holding one. The RoBERTa tokenizer is read
from that folder when it holds tokenizer files (``tokenizer.json`` or ``vocab.json`` + ``merges.txt``),
else by the name in the checkpoint's ``args.text_encoder_type`` (``roberta-base``) from the Hugging Face
cache or hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from unipt.models.mdetr.preprocess import MDETRPreprocessor
from unipt.models.mdetr.weights import load_mdetr_with_settings
from unipt.packaged_backbones import Backbone

TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


def load_tokenizer(checkpoint: Path, settings: dict[str, Any]) -> Any:
    """A fast RoBERTa tokenizer: from the checkpoint's folder, else ``settings['text_encoder_type']``."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    name = str(folder) if any((folder / f).is_file() for f in TOKENIZER_FILES) else settings.get(
        "text_encoder_type", "roberta-base")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except OSError as err:
        raise OSError(
            f"could not load MDETR's tokenizer {name!r} ({err}). Put the RoBERTa tokenizer files "
            f"(tokenizer.json, or vocab.json + merges.txt) next to the checkpoint in {folder}, or make "
            f"{name!r} available in the Hugging Face cache"
        ) from err
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"MDETR needs a fast tokenizer (character offsets for token maps); {name!r} is not one")
    return tokenizer


def load_mdetr_backbone(spec: str, **_: Any) -> Backbone:
    """``spec``: the checkpoint path (after ``mdetr:``). The model is returned as loaded; wrapping it with
    a method (``unipt`` with the ``mdetr`` preset) freezes it."""
    path = Path(spec)
    model, settings = load_mdetr_with_settings(path)
    tokenizer = load_tokenizer(path, settings)
    return Backbone(f"mdetr:{spec}", model, "image", MDETRPreprocessor(tokenizer))
