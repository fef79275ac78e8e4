"""Run unipt's MDETR transformer and UniPT side network next to the released code, on the same random weights.

Usage (clones of the two public repositories; nothing is downloaded)::

    PYTHONPATH=src python scripts/mdetr_parity.py --mdetr path/to/ashkamath/mdetr --unipt path/to/Paranioar/UniPT

Both released ``Transformer`` classes (MDETR's, and UniPT's copy with the side network inside) are built
at MDETR's width (256, 8 heads, 6 + 6 layers) with a narrow FFN and a tiny random RoBERTa (the released
constructors' ``from_pretrained`` calls are redirected to it), their weights are copied into unipt's
``MDETRTransformer`` and ``CrossStreamSideNetwork`` (``mdetr`` preset), and the outputs are compared on
a padded batch. The losses: the released ``SetCriterion`` (Hungarian matcher, soft-token, L1, GIoU,
contrastive alignment, auxiliary outputs) and unipt's ``MDETRCriterion`` on the same random predictions,
captions and ``tokens_positive`` spans (several boxes and spans per caption). torchvision / pycocotools,
imported but unused by these parts, are stubbed; ``torchvision.ops.box_area`` is the one-line area.
Prints the largest absolute differences; exits 1 if one exceeds ``--tolerance``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import torch
import transformers

from unipt.config import UniPTConfig
from unipt.models.mdetr import MDETR, HeadOutputs, MDETRConfig, MDETRCriterion, ResNetBodyConfig, TextEncoderConfig
from unipt.models.mdetr.image import SinePositionEncoding
from unipt.models.mdetr.preprocess import token_map
from unipt.nn import build_side_network

SIDE_NAMES = {  # UniPT's released attribute -> unipt's CrossStreamSideNetwork sub-module
    "side_downsample0_encoder": "encoder.guide_proj", "side_downsamples_encoder": "encoder.down_projs",
    "side_projection_encoder": "encoder.fusion", "side_gate_layer_encoder": "encoder.aggregation.gate",
    "side_downsample0_decoder": "decoder.guide_proj", "side_downsamples_decoder": "decoder.down_projs",
    "side_projection_decoder": "decoder.fusion", "side_gate_layer_decoder": "decoder.aggregation.gate",
    "side_projection_crosser": "decoder.crossers", "side_final_upsample": "up_proj",
}


def load_module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tiny_text(folder: Path) -> tuple[TextEncoderConfig, object, transformers.RobertaModel]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models"))
    from mdetr_release import write_tokenizer

    vocab = write_tokenizer(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    tokenizer.batch_encode_plus = tokenizer.__call__  # removed in transformers 5; the released code calls it
    config = TextEncoderConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=96, max_position_embeddings=40)
    torch.manual_seed(0)
    return config, tokenizer, transformers.RobertaModel(config.to_hf())


def stub_unused_imports() -> None:
    """Modules the released files import at the top but the compared parts never use."""
    def stub(name: str, **attrs: object) -> None:
        module = types.ModuleType(name)
        module.__path__ = []  # a package, so "models.mdetr"'s relative imports resolve
        module.__dict__.update(attrs)
        sys.modules[name] = module

    stub("torchvision", datasets=types.SimpleNamespace(CocoDetection=object))
    stub("torchvision.ops")
    stub("torchvision.ops.boxes", box_area=lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
    stub("pycocotools", mask=None)
    stub("models")
    stub("util")
    stub("datasets")
    stub("datasets.transforms")
    stub("models.backbone", build_backbone=None, TimmBackbone=None)
    stub("models.postprocessors", build_postprocessors=None)
    stub("models.segmentation", DETRsegm=None, dice_loss=None, sigmoid_focal_loss=None)
    stub("models.transformer", build_transformer=None)


def compare_losses(mdetr: Path, tokenizer: object) -> dict[str, torch.Tensor]:
    """Released SetCriterion vs MDETRCriterion on random predictions; max |diff| per loss term."""
    for name in ("util.dist", "util.box_ops", "util.metrics", "util.misc"):
        load_module(name, mdetr / (name.replace(".", "/") + ".py"))
    matcher = load_module("models.matcher", mdetr / "models/matcher.py")
    released = load_module("models.mdetr", mdetr / "models/mdetr.py")
    coco = load_module("datasets.coco", mdetr / "datasets/coco.py")

    captions = ["the red square left", "blue block", "the green circle right"]
    spans = [[[[4, 14]]], [[[0, 4]], [[5, 10]]], [[[0, 3], [10, 16]]]]  # boxes per caption, spans per box
    torch.manual_seed(2)
    k, queries, classes = 3, 6, 255
    boxes = [torch.cat([torch.rand(len(s), 2) * 0.5 + 0.25, torch.rand(len(s), 2) * 0.3 + 0.1], 1) for s in spans]
    tokenized = tokenizer(captions, padding="longest", return_tensors="pt", return_offsets_mapping=True)
    heads = HeadOutputs(torch.randn(k, 3, queries, classes + 1), torch.rand(k, 3, queries, 4) * 0.6 + 0.2,
                        torch.nn.functional.normalize(torch.randn(k, 3, queries, 16), dim=-1),
                        torch.nn.functional.normalize(torch.randn(3, tokenized["input_ids"].shape[1], 16), dim=-1))
    maps = [torch.stack([token_map(tokenized["offset_mapping"][i], box) for box in s]) for i, s in enumerate(spans)]
    ours = MDETRCriterion()(heads, boxes, maps)

    def layer(i: int) -> dict[str, object]:
        return {"pred_logits": heads.logits[i], "pred_boxes": heads.boxes[i], "proj_queries": heads.proj_queries[i],
                "proj_tokens": heads.proj_tokens, "tokenized": tokenized}

    outputs = {**layer(k - 1), "aux_outputs": [layer(i) for i in range(k - 1)]}
    targets = [{"boxes": b, "labels": torch.zeros(len(b), dtype=torch.long), "tokens_positive": s}
               for b, s in zip(boxes, spans, strict=True)]
    positive_map = torch.cat([coco.create_positive_map(tokenizer(c, return_tensors="pt"), s)
                              for c, s in zip(captions, spans, strict=True)])
    criterion = released.SetCriterion(classes, matcher.HungarianMatcher(1, 5, 2), eos_coef=0.1,
                                      losses=["labels", "boxes", "contrastive_align"], temperature=0.07)
    theirs = criterion(outputs, targets, positive_map)
    print("released loss values:", {k: round(float(v), 4) for k, v in theirs.items()})
    return {f"loss {name}": (theirs[name] - ours[name]).abs().max() for name in theirs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mdetr", type=Path, required=True, help="clone of github.com/ashkamath/mdetr")
    parser.add_argument("--unipt", type=Path, required=True, help="clone of github.com/Paranioar/UniPT")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)

    text_config, tokenizer, roberta = tiny_text(Path(tempfile.mkdtemp()))
    transformers.RobertaTokenizerFast.from_pretrained = staticmethod(lambda *a, **k: tokenizer)
    transformers.RobertaModel.from_pretrained = staticmethod(lambda *a, **k: roberta)
    stub_unused_imports()
    position = load_module("models.position_encoding", args.unipt / "MDETR/models/position_encoding.py")
    misc = load_module("util.misc", args.unipt / "MDETR/util/misc.py")
    with_side = load_module("unipt_released_transformer", args.unipt / "MDETR/models/transformer.py")
    plain = load_module("mdetr_released_transformer", args.mdetr / "models/transformer.py")

    sizes = dict(d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=64, dropout=0.1,
                 return_intermediate_dec=True, text_encoder_type="roberta-base")
    theirs, theirs_plain = with_side.Transformer(**sizes).eval(), plain.Transformer(**sizes).eval()
    with torch.no_grad():  # the side network's biases and norms start at constants: perturb them all
        for name, p in theirs.named_parameters():
            if "side" in name:
                p.add_(0.1 * torch.randn_like(p))
    state = theirs.state_dict()
    core = {k: v for k, v in state.items() if "side" not in k}
    theirs_plain.load_state_dict(core)
    config = MDETRConfig(hidden_dim=256, nheads=8, enc_layers=6, dec_layers=6, dim_feedforward=64, num_queries=7,
                         body_channels=32, resnet=ResNetBodyConfig((1, 1, 1, 1), (2, 2, 4, 8), 4), text=text_config)
    ours = MDETR(config).eval().transformer
    ours.load_state_dict(core)
    side = build_side_network(UniPTConfig.for_paper("mdetr")).eval()
    side.load_state_dict({f"{SIDE_NAMES[k.split('.', 1)[0]]}.{k.split('.', 1)[1]}": v
                          for k, v in state.items() if k.startswith("side")})

    torch.manual_seed(1)
    src, query = torch.randn(2, 256, 3, 4), torch.randn(7, 256)
    pad = torch.zeros(2, 3, 4, dtype=torch.bool)
    pad[1, :, 3:] = pad[1, 2:, :] = True  # the second image is padded right and bottom
    texts = ["the red square left", "blue block"]  # the second caption is padded
    pos = position.PositionEmbeddingSine(128, normalize=True)(misc.NestedTensor(src, pad))
    with torch.no_grad():
        cache = theirs(src, pad, query, pos, texts, encode_and_save=True)
        adapted = theirs(mask=cache["mask"], query_embed=cache["query_embed"], pos_embed=cache["pos_embed"],
                         encode_and_save=False, text_memory=cache["text_memory_resized"],
                         img_memory=cache["img_memory"], text_attention_mask=cache["text_attention_mask"],
                         memory_cache=cache)
        cache_plain = theirs_plain(src, pad, query, pos, texts, encode_and_save=True)
        decoded_plain = theirs_plain(mask=cache_plain["mask"], query_embed=cache_plain["query_embed"],
                                     pos_embed=cache_plain["pos_embed"], encode_and_save=False,
                                     text_memory=cache_plain["text_memory_resized"],
                                     img_memory=cache_plain["img_memory"],
                                     text_attention_mask=cache_plain["text_attention_mask"])
        our_pos = SinePositionEncoding(128)(~pad)
        encoded = tokenizer(texts, padding="longest", return_tensors="pt")
        states = ours.encode(src.flatten(2).transpose(1, 2), (~pad).flatten(1), our_pos.flatten(2).transpose(1, 2),
                             encoded["input_ids"], encoded["attention_mask"])
        decoded = ours.decode(states, query)
        out = side(list(states.hidden), list(decoded), states.mask)
    checks = {
        "sine positions": (pos - our_pos).abs().max(),
        "encoder memory (MDETR)": (cache_plain["img_memory"].transpose(0, 1) - states.memory).abs().max(),
        "decoder outputs (MDETR, 6 layers)": (decoded_plain - torch.stack(decoded[1:])).abs().max(),
        "adapted decoder outputs (UniPT, 4 layers)":
            (adapted - torch.cat([out.aux_hidden_states, out.last_hidden_state[None]])).abs().max(),
    }
    checks.update(compare_losses(args.mdetr, tokenizer))
    for name, value in checks.items():
        print(f"{name:45s} max |diff| {float(value):.2e}")
    print(f"(output scale: {float(adapted.abs().max()):.2f})")
    return 0 if all(float(v) <= args.tolerance for v in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
