"""Tiny random MDETR checkpoints written in the *released* layout, independently of unipt's model code.

``released_state_dict`` lists every key and shape the way ``ashkamath/mdetr`` builds them (``Joiner`` ->
``backbone.0.body.*`` with torchvision ResNet names and frozen BatchNorm buffers, ``transformer.encoder``
/ ``decoder`` layers of ``nn.MultiheadAttention`` + ``linear1/2`` + ``norm*``, a Hugging Face
``RobertaModel`` under ``transformer.text_encoder`` including the ``embeddings.position_ids`` buffer that
transformers 4.5 saved, ``resizer``, heads). ``write_release`` saves it like ``main.py`` does
(``{"model", "model_ema", "optimizer", "epoch", "args"}``) next to a byte-level BPE RoBERTa tokenizer.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

CAPTION_WORDS = ("the", "a", "red", "green", "blue", "yellow", "square", "block", "circle", "left", "right")


@dataclass
class TinySizes:
    """Sizes of a tiny MDETR (defaults: fast unit tests; the workflow test uses width 256, 6 + 6 layers)."""

    hidden: int = 32
    heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 2
    ffn: int = 64
    queries: int = 5
    classes: int = 255
    align: int = 16
    stem: int = 8
    widths: tuple[int, int, int, int] = (4, 4, 8, 8)
    depths: tuple[int, int, int, int] = (1, 2, 1, 1)
    text_hidden: int = 24
    text_layers: int = 2
    text_heads: int = 2
    text_ffn: int = 48
    max_positions: int = 40
    extra: dict[str, tuple[int, ...]] = field(default_factory=dict)  # more keys, for "wrong file" tests


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{k}": (channels,) for k in ("weight", "bias", "running_mean", "running_var")}


def _linear(prefix: str, out: int, inp: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (out, inp), f"{prefix}.bias": (out,)}


def _norm(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (width,), f"{prefix}.bias": (width,)}


def _attention(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.in_proj_weight": (3 * width, width), f"{prefix}.in_proj_bias": (3 * width,),
            **_linear(f"{prefix}.out_proj", width, width)}


def released_shapes(s: TinySizes, vocab: int) -> dict[str, tuple[int, ...]]:
    """Every key -> shape of the released MDETR (ResNet body, RoBERTa, contrastive-alignment heads)."""
    shapes: dict[str, tuple[int, ...]] = {"backbone.0.body.conv1.weight": (s.stem, 3, 7, 7),
                                          **_bn("backbone.0.body.bn1", s.stem)}
    channels = s.stem
    for stage, (depth, width) in enumerate(zip(s.depths, s.widths, strict=True), start=1):
        for i in range(depth):
            p = f"backbone.0.body.layer{stage}.{i}"
            shapes[f"{p}.conv1.weight"] = (width, channels, 1, 1)
            shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
            shapes[f"{p}.conv3.weight"] = (4 * width, width, 1, 1)
            for j, c in ((1, width), (2, width), (3, 4 * width)):
                shapes.update(_bn(f"{p}.bn{j}", c))
            if i == 0:
                shapes[f"{p}.downsample.0.weight"] = (4 * width, channels, 1, 1)
                shapes.update(_bn(f"{p}.downsample.1", 4 * width))
            channels = 4 * width
    d = s.hidden
    shapes.update({"input_proj.weight": (d, channels, 1, 1), "input_proj.bias": (d,),
                   "query_embed.weight": (s.queries, d)})
    for i in range(s.enc_layers):
        p = f"transformer.encoder.layers.{i}"
        shapes.update({**_attention(f"{p}.self_attn", d), **_linear(f"{p}.linear1", s.ffn, d),
                       **_linear(f"{p}.linear2", d, s.ffn), **_norm(f"{p}.norm1", d), **_norm(f"{p}.norm2", d)})
    for i in range(s.dec_layers):
        p = f"transformer.decoder.layers.{i}"
        shapes.update({**_attention(f"{p}.self_attn", d), **_attention(f"{p}.cross_attn_image", d),
                       **_linear(f"{p}.linear1", s.ffn, d), **_linear(f"{p}.linear2", d, s.ffn),
                       **_norm(f"{p}.norm1", d), **_norm(f"{p}.norm3", d), **_norm(f"{p}.norm4", d)})
    shapes.update(_norm("transformer.decoder.norm", d))
    t = "transformer.text_encoder"
    shapes.update({f"{t}.embeddings.word_embeddings.weight": (vocab, s.text_hidden),
                   f"{t}.embeddings.position_embeddings.weight": (s.max_positions, s.text_hidden),
                   f"{t}.embeddings.token_type_embeddings.weight": (1, s.text_hidden),
                   f"{t}.embeddings.position_ids": (1, s.max_positions),
                   **_norm(f"{t}.embeddings.LayerNorm", s.text_hidden)})
    h = s.text_hidden
    for i in range(s.text_layers):
        p = f"{t}.encoder.layer.{i}"
        shapes.update({**_linear(f"{p}.attention.self.query", h, h), **_linear(f"{p}.attention.self.key", h, h),
                       **_linear(f"{p}.attention.self.value", h, h), **_linear(f"{p}.attention.output.dense", h, h),
                       **_norm(f"{p}.attention.output.LayerNorm", h),
                       **_linear(f"{p}.intermediate.dense", s.text_ffn, h),
                       **_linear(f"{p}.output.dense", h, s.text_ffn), **_norm(f"{p}.output.LayerNorm", h)})
    shapes.update({**_linear(f"{t}.pooler.dense", h, h), **_linear("transformer.resizer.fc", d, h),
                   **_norm("transformer.resizer.layer_norm", d), **_linear("class_embed", s.classes + 1, d),
                   **_linear("bbox_embed.layers.0", d, d), **_linear("bbox_embed.layers.1", d, d),
                   **_linear("bbox_embed.layers.2", 4, d),
                   **_linear("contrastive_align_projection_image", s.align, d),
                   **_linear("contrastive_align_projection_text", s.align, d)})
    shapes.update(s.extra)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with sane statistics (positive BatchNorm variances, unit LayerNorm scales)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("position_ids"):
            state[key] = torch.arange(shape[-1]).expand(shape).clone()
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith(("LayerNorm.weight", "norm1.weight", "norm2.weight", "norm3.weight", "norm4.weight",
                           "norm.weight", "layer_norm.weight")) or (".bn" in key and key.endswith("weight")):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1) if len(shape) > 1 else 10
            state[key] = torch.randn(shape, generator=gen) / fan_in ** 0.5
    return state


def write_tokenizer(folder: Path, words: tuple[str, ...] = CAPTION_WORDS) -> int:
    """A byte-level BPE RoBERTa tokenizer (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2) in ``folder``; returns its vocab size."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    tokenizer = ByteLevelBPETokenizer(trim_offsets=True)
    corpus = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    tokenizer.train_from_iterator(corpus, vocab_size=600, min_frequency=1,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer.save_model(str(folder))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "RobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
        "unk_token": "<unk>", "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>",
        "model_max_length": 512}))
    return tokenizer.get_vocab_size()


def write_release(folder: Path, sizes: TinySizes | None = None, seed: int = 0, ema: bool = True) -> Path:
    """``folder/checkpoint.pth`` as released (``model`` + ``model_ema`` + ``optimizer`` + ``epoch`` + ``args``)
    and the tokenizer files beside it. Returns the checkpoint path."""
    sizes = sizes or TinySizes()
    vocab = write_tokenizer(folder)
    shapes = released_shapes(sizes, vocab)
    args = argparse.Namespace(backbone="resnet101", text_encoder_type="roberta-base", nheads=sizes.heads,
                              dropout=0.1, hidden_dim=sizes.hidden, num_queries=sizes.queries, ema=ema,
                              ema_decay=0.9998, combine_datasets=["refexp"], lr=5e-4)
    checkpoint = {"model": random_state(shapes, seed), "optimizer": {"state": {}, "param_groups": []}, "epoch": 9,
                  "args": args}
    if ema:
        checkpoint["model_ema"] = random_state(shapes, seed + 1)
    path = folder / "checkpoint.pth"
    torch.save(checkpoint, path)
    return path
