"""Tiny stand-ins for CLIP-ViL's released files: a pre-training checkpoint in the released layout
(``bert.*`` + the pre-trained QA head ``answer_head.logit_fc.*`` + pre-training heads), LXMERT's answer
table, a tiny CLIP image tower saved as a Hugging Face folder, and per-image feature files.

(``tests/models`` checks the layout itself against tensors written independently of the product; here the
file is made from the product's encoder so the workflows test training, not loading.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unipt.models.clipvil import CLIPViLBackbone, CLIPViLConfig
from unipt.tasks.vqa import AnswerHead

VOCAB = 30522  # bert-base-uncased (MiniLM's tokenizer has the same vocabulary)
TABLE = ["yes", "no", "red", "blue", "square", "circle", "2", "cat"]  # the pre-trained head's answers


def pretraining_checkpoint(path: Path, visual_feat_dim: int, grid_positions: int) -> Path:
    torch.manual_seed(7)
    config = CLIPViLConfig(vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                           max_position_embeddings=64, visual_feat_dim=visual_feat_dim, grid_positions=grid_positions)
    state = {f"bert.{k}": v for k, v in CLIPViLBackbone(config).state_dict().items()}
    head = AnswerHead(32, len(TABLE))
    state.update({f"answer_head.logit_fc.{k}": v for k, v in head.state_dict().items()})
    state.update({"cls.seq_relationship.weight": torch.zeros(2, 32), "cls.seq_relationship.bias": torch.zeros(2)})
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    return path


def answer_table(path: Path) -> Path:
    path.write_text(json.dumps([{"ans": a, "dsets": ["vqa", "gqa"]} for a in TABLE]))
    return path


def tiny_clip_tower(folder: Path, width: int = 24) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(8)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                                     num_attention_heads=2, image_size=32, patch_size=16)).save_pretrained(folder)
    return folder


def grid_features(images: Path, out: Path, channels: int = 16, cells: int = 3) -> Path:
    """``<image id>.npy`` ``[channels, cells, cells]``: the image's colours on a coarse grid, mixed by a fixed
    random matrix (a stand-in for CLIP-RN50x4 grids that still depends on the pixels)."""
    mix = np.random.default_rng(0).normal(size=(channels, 3)).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    for image in sorted(images.glob("*.jpg")):
        rgb = np.asarray(Image.open(image).convert("RGB").resize((cells, cells)), dtype=np.float32) / 255.0
        np.save(out / f"{image.stem}.npy", np.einsum("ck,hwk->chw", mix, rgb))
    return out
