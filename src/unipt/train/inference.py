"""Use a finished run: reload its best checkpoint, evaluate, classify or retrieve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image

from unipt.outputs import AdaptedOutput
from unipt.train.checkpoint import load_checkpoint, restore_weights
from unipt.train.config import RunConfig, apply_override
from unipt.train.loop import Trainer


def load_run(run_dir: str | Path, overrides: list[str] | None = None, tag: str = "best") -> Trainer:
    """A :class:`Trainer` for the run in ``run_dir`` with the ``tag`` checkpoint's weights loaded."""
    run = Path(run_dir)
    config_file = run / "run_config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: {run} is not a unipt run folder (made by unipt train)")
    data = yaml.safe_load(config_file.read_text())
    for item in overrides or []:
        apply_override(data, item)
    config = RunConfig.from_dict(data)
    config.train.output_dir = str(run)
    trainer = Trainer(config)
    checkpoint = run / "checkpoints" / tag
    weights, _, _ = load_checkpoint(checkpoint)
    restore_weights(trainer.system, weights, checkpoint)
    trainer.system.eval()
    return trainer


@torch.no_grad()
def _tower_features(trainer: Trainer, tower: str, values: list[Any]) -> AdaptedOutput:
    _, backbone = trainer.system.tower_info[tower]
    inputs = backbone.preprocess(values)
    return trainer.system.towers[tower](**inputs)


@torch.no_grad()
def predict(trainer: Trainer, texts: list[str] | None = None, images: list[str] | None = None,
            top_k: int = 3) -> list[dict[str, Any]]:
    """Classification: top-k classes per input. Retrieval: top-k test-set matches per query."""
    task = trainer.system.task
    loaded = [Image.open(p).convert("RGB") for p in images or []]
    if task.name == "classification":
        field_values = texts if texts else loaded
        feats = {task.towers[0]: _tower_features(trainer, task.towers[0], field_values)}
        probs = task.logits(feats).softmax(-1)
        names = _class_names(trainer)
        top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        return [
            {"input": str(x if texts else p), "top": [{"label": names[i] if names else int(i), "p": round(float(v), 4)}
                                                      for v, i in zip(vals, idx, strict=True)]}
            for x, p, vals, idx in zip(field_values, images or field_values, top.values, top.indices, strict=True)
        ]
    if task.name == "retrieval":
        return _retrieve(trainer, texts or [], loaded, images or [], top_k)
    raise ValueError(f"predict supports classification and retrieval runs, not {task.name!r}; use unipt eval")


def _retrieve(trainer: Trainer, texts: list[str], images: list[Image.Image], paths: list[str],
              top_k: int) -> list[dict[str, Any]]:
    task = trainer.system.task
    gallery = trainer.data.test or trainer.data.eval
    records = [gallery[i] for i in range(len(gallery))]
    image_tower, text_tower = task.towers
    results = []
    if texts:
        items = {r["item_index"]: r for r in records}
        order = list(items)
        img_emb = task.embed(image_tower, _tower_features(trainer, image_tower, [items[i]["image"] for i in order]))
        txt_emb = task.embed(text_tower, _tower_features(trainer, text_tower, texts))
        scores = txt_emb @ img_emb.T
        for text, row in zip(texts, scores, strict=True):
            best = row.topk(min(top_k, len(order)))
            results.append({"query": text, "top": [
                {"image": str(items[order[i]].get("image_path")), "caption": items[order[i]].get("text"),
                 "score": round(float(v), 4)} for v, i in zip(best.values, best.indices, strict=True)]})
    if images:
        captions = [r["text"] for r in records]
        txt_emb = task.embed(text_tower, _tower_features(trainer, text_tower, captions))
        img_emb = task.embed(image_tower, _tower_features(trainer, image_tower, images))
        for path, row in zip(paths, img_emb @ txt_emb.T, strict=True):
            best = row.topk(min(top_k, len(captions)))
            results.append({"query": path, "top": [{"caption": captions[i], "score": round(float(v), 4)}
                                                   for v, i in zip(best.values, best.indices, strict=True)]})
    return results


def _class_names(trainer: Trainer) -> list[str] | None:
    dataset = trainer.data.train
    while hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return getattr(dataset, "meta", {}).get("class_names")
