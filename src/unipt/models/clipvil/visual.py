"""The visual side of CLIP-ViL: a frozen CLIP image encoder that yields a grid, or features from files.

* ``open_clip:<model>`` (optional extra ``unipt[clip]``): an OpenAI-layout CLIP ResNet (the paper uses
  ``RN50x4``); the grid is the output of ``layer4`` (the attention pool is skipped, as the released code's
  ``skip_last_layer=True``): ``[B, 2560, H/32, W/32]``. Its weights come from the CLIP-ViL checkpoint
  (``...encoder.visual_model.visual.*``, CLIP-ViL pre-training updated them), or from open_clip's
  ``pretrained`` tag: ``open_clip:RN50x4:openai``.
* ``clip-vision:<hub name or folder>``: a Hugging Face ``CLIPVisionModel`` (ViT); the tokens are every
  position of the last layer after ``post_layernorm`` (``[B, 1 + patches, 768]``), as the released ViT-B/32
  variant's ``ln_post`` on all tokens.
* pre-extracted features, one file per image (:class:`FeatureFiles`): ``<root>/<image id>.safetensors``
  (one tensor) or ``.npy``, shaped ``[C, h, w]`` (a grid) or ``[Lv, C]`` (tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


class OpenCLIPResNetGrid(nn.Module):
    """An open_clip ``ModifiedResNet`` as a grid extractor; ``visual`` keeps the OpenAI key layout."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        for part in ("stem", "layer1", "layer2", "layer3", "layer4"):
            if not hasattr(visual, part):
                raise ValueError(f"{type(visual).__name__} is not a CLIP ResNet (no {part!r}); CLIP-ViL's grid "
                                 "comes from a ResNet tower (e.g. open_clip:RN50x4); use clip-vision:<ViT> for ViTs")
        self.visual = visual
        self.feature_dim = _grid_channels(visual)

    @torch.no_grad()
    def grid(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, C, H/32, W/32]``."""
        v = self.visual
        x = v.stem(pixel_values.to(next(v.parameters()).dtype))
        return v.layer4(v.layer3(v.layer2(v.layer1(x)))).float()


class HFCLIPVisionTokens(nn.Module):
    """A Hugging Face ``CLIPVisionModel``: every token of the last layer after ``post_layernorm``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.feature_dim = int(model.config.hidden_size)

    @torch.no_grad()
    def grid(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, 1 + patches, D]``."""
        tower = getattr(self.model, "vision_model", self.model)  # transformers < 5 nests the tower
        # CLIP-ViL's canvases (384 x 640) are not the tower's square size: interpolate its position table, as
        # the released ViT variant resized it (``reset_pos_embedding``).
        out = tower(pixel_values=pixel_values, interpolate_pos_encoding=True)
        return tower.post_layernorm(out.last_hidden_state)


def _grid_channels(visual: nn.Module) -> int:
    block = visual.layer4[-1]
    conv = getattr(block, "conv3", None)
    if conv is None:
        raise ValueError("cannot read the grid width of this ResNet (its last block has no conv3)")
    return int(conv.out_channels)


def build_visual_encoder(spec: str) -> tuple[nn.Module, str]:
    """``open_clip:<model>[:<pretrained tag>]`` or ``clip-vision:<name>`` -> (grid module, weights source).

    The source is ``"checkpoint"`` when the weights must come from the CLIP-ViL checkpoint (open_clip
    without a pretrained tag) and ``"own"`` when the module loaded its own.
    """
    kind, _, rest = spec.partition(":")
    if kind == "open_clip":
        try:
            import open_clip
        except ImportError as err:
            raise ImportError(f"visual={spec!r} needs open_clip: pip install 'unipt[clip]' ({err})") from err
        name, _, tag = rest.partition(":")
        model = open_clip.create_model(name, pretrained=tag or None)
        return OpenCLIPResNetGrid(model.visual).eval(), ("own" if tag else "checkpoint")
    if kind == "clip-vision":
        import transformers

        try:
            model = transformers.CLIPVisionModel.from_pretrained(rest)
        except OSError as err:
            raise OSError(f"could not load the CLIP image tower {rest!r} (a local folder or a reachable hub "
                          f"name): {err}") from err
        return HFCLIPVisionTokens(model).eval(), "own"
    raise ValueError(f"unknown visual encoder {spec!r}; use 'open_clip:RN50x4', 'open_clip:RN50x4:openai' or "
                     "'clip-vision:<hub name or folder>' (or features=<folder> for pre-extracted grids)")


@dataclass
class FeatureFiles:
    """Per-image visual features on disk: ``root / pattern.format(image_id=...) + (.safetensors | .npy)``.

    A ``.safetensors`` file holds one tensor (any name). Shapes: ``[C, h, w]`` grid or ``[Lv, C]`` tokens.
    """

    root: str
    pattern: str = "{image_id}"

    def path(self, image_id: Any) -> Path:
        stem = Path(self.root) / self.pattern.format(image_id=image_id)
        for suffix in (".safetensors", ".npy"):
            candidate = stem.with_name(stem.name + suffix)
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no visual features for image {image_id!r}: expected {stem}.safetensors or "
                                f"{stem}.npy (features root {self.root}, pattern {self.pattern!r})")

    def load(self, image_id: Any) -> torch.Tensor:
        path = self.path(image_id)
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            tensor = torch.from_numpy(np.ascontiguousarray(array))
        else:
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if len(tensors) != 1:
                raise ValueError(f"{path} holds {sorted(tensors)}; a feature file must hold exactly one tensor")
            tensor = next(iter(tensors.values()))
        if tensor.dim() not in (2, 3):
            raise ValueError(f"{path}: features must be [C, h, w] (grid) or [Lv, C] (tokens), "
                             f"got {tuple(tensor.shape)}")
        return tensor.float()


def stack_features(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad per-image features to one batch: grids ``[B, C, h_max, w_max]`` + mask ``[B, h_max*w_max]``,
    tokens ``[B, Lv_max, C]`` + mask ``[B, Lv_max]`` (1 = real cell / token)."""
    kinds = {f.dim() for f in features}
    if len(kinds) != 1:
        raise ValueError("a batch mixes grid ([C, h, w]) and token ([Lv, C]) feature files")
    if kinds == {3}:
        channels = {f.shape[0] for f in features}
        if len(channels) != 1:
            raise ValueError(f"feature grids have different channel counts {sorted(channels)}")
        rows, cols = max(f.shape[1] for f in features), max(f.shape[2] for f in features)
        batch = features[0].new_zeros(len(features), channels.pop(), rows, cols)
        mask = torch.zeros(len(features), rows, cols, dtype=torch.long)
        for i, f in enumerate(features):
            batch[i, :, : f.shape[1], : f.shape[2]] = f
            mask[i, : f.shape[1], : f.shape[2]] = 1
        return batch, mask.flatten(1)
    widths = {f.shape[1] for f in features}
    if len(widths) != 1:
        raise ValueError(f"feature tokens have different widths {sorted(widths)}")
    length = max(f.shape[0] for f in features)
    batch = features[0].new_zeros(len(features), length, widths.pop())
    mask = torch.zeros(len(features), length, dtype=torch.long)
    for i, f in enumerate(features):
        batch[i, : f.shape[0]] = f
        mask[i, : f.shape[0]] = 1
    return batch, mask
