"""Use a finished run: reload its best checkpoint, evaluate, classify or retrieve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import Dataset, Subset

from unipt.data.images import load_rgb
from unipt.method import load_into
from unipt.outputs import AdaptedOutput
from unipt.train.checkpoint import load_checkpoint
from unipt.train.config import RunConfig, apply_override
from unipt.train.data import load_run_data
from unipt.train.labels import read_vocabulary
from unipt.train.loop import Trainer


def load_run(run_dir: str | Path, overrides: list[str] | None = None, tag: str = "best") -> Trainer:
    """A :class:`Trainer` for the run in ``run_dir`` with the ``tag`` checkpoint's weights loaded."""
    trainer = run_trainer(run_dir, overrides)
    checkpoint = Path(run_dir) / "checkpoints" / tag
    state, _ = load_checkpoint(checkpoint, trainer.system)
    if "ema" in state:  # runs with train.ema_decay are evaluated with the averaged weights
        load_into(trainer.system, state["ema"], checkpoint)
    trainer.system.eval()
    return trainer


def run_trainer(run_dir: str | Path, overrides: list[str] | None = None) -> Trainer:
    """A :class:`Trainer` rebuilt from the run's ``run_config.yaml`` (fresh weights; reads raw data unless
    ``train.cache_dir`` is among the ``overrides``)."""
    run = Path(run_dir)
    config_file = run / "run_config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: {run} is not a unipt run folder (made by unipt train)")
    data = yaml.safe_load(config_file.read_text())
    for item in overrides or []:
        apply_override(data, item)
    config = RunConfig.from_dict(data)
    config.train.output_dir = str(run)
    if not any(item.startswith("train.cache_dir=") for item in overrides or []):
        config.train.cache_dir = None  # evaluation and prediction read raw data unless asked otherwise
    # The classes the run was trained with (labels.json), so eval and predict number them the same way.
    return Trainer(config, data=load_run_data(config, labels=read_vocabulary(run)))


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
    if not texts and not images:
        raise ValueError("nothing to predict: pass texts=[...] or images=[...] (CLI: --text TEXT or --image PATH)")
    loaded = [load_rgb(p) for p in images or []]
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


def _retrieve(trainer: Trainer, texts: list[str], images: list[Any], paths: list[str],
              top_k: int) -> list[dict[str, Any]]:
    """Rank the test (else eval) split's images for each text and its captions for each image.

    The gallery is encoded in chunks of the eval batch size, each image once (not once per caption),
    and only the chunk being encoded is held open in memory.
    """
    task = trainer.system.task
    dataset, records = _raw_records(trainer.data.test or trainer.data.eval)
    image_tower, text_tower = task.towers
    results = []
    if texts:
        items: dict[int, dict[str, Any]] = {}
        for record in records:
            items.setdefault(int(record["item_index"]), record)  # an image's first caption describes it
        gallery = list(items.values())
        img_emb = _embed(trainer, image_tower, gallery, lambda r: dataset.load(r)["image"])
        txt_emb = _embed(trainer, text_tower, texts)
        for text, row in zip(texts, txt_emb @ img_emb.T, strict=True):
            best = row.topk(min(top_k, len(gallery)))
            results.append({"query": text, "top": [
                {"image": str(gallery[i].get("image_path")), "caption": gallery[i].get("text"),
                 "score": round(float(v), 4)} for v, i in zip(best.values, best.indices, strict=True)]})
    if images:
        captions = [r["text"] for r in records]
        txt_emb = _embed(trainer, text_tower, captions)
        img_emb = _embed(trainer, image_tower, images)
        for path, row in zip(paths, img_emb @ txt_emb.T, strict=True):
            best = row.topk(min(top_k, len(captions)))
            results.append({"query": path, "top": [{"caption": captions[i], "score": round(float(v), 4)}
                                                   for v, i in zip(best.values, best.indices, strict=True)]})
    return results


@torch.no_grad()
def _embed(trainer: Trainer, tower: str, values: list[Any], load: Callable[[Any], Any] | None = None) -> torch.Tensor:
    """``[N, E]`` retrieval embeddings of ``values`` (opened with ``load`` chunk by chunk when given)."""
    size = trainer.config.train.eval_batch_size or trainer.config.train.batch_size
    parts = []
    for start in range(0, len(values), size):
        chunk = values[start:start + size]
        chunk = [load(v) for v in chunk] if load is not None else chunk
        parts.append(trainer.system.task.embed(tower, _tower_features(trainer, tower, chunk)))
    return torch.cat(parts)


def _raw_records(dataset: Dataset) -> tuple[Any, list[dict[str, Any]]]:
    """(the underlying record dataset, the raw records ``dataset`` selects), without opening any file."""
    if isinstance(dataset, Subset):
        base, records = _raw_records(dataset.dataset)
        return base, [records[i] for i in dataset.indices]
    return dataset, list(dataset.records)


def _class_names(trainer: Trainer) -> list[str] | None:
    labels = trainer.data.labels
    return list(labels.class_names) if labels is not None and labels.class_names is not None else None
