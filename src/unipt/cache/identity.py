"""What a cache was built from: per-tower identity (backbone, taps, preprocessing) and the dataset fingerprint.

The same functions describe the cache at build time (written into ``manifest.json``) and the run at load
time; :func:`differences` lists every field where the two disagree, so a stale cache is refused with a
message that names exactly what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from unipt.cache.errors import CacheRefused
from unipt.method import FrozenTapMethod

# Record fields the collator turns into task targets; copied into the manifest per record.
TARGET_KEYS = ("label", "item_index", "answers", "answer", "box", "width", "height")
# Record fields that hold decoded media (never hashed, never stored).
MEDIA_KEYS = ("image", "video")


def jsonable(value: Any) -> Any:
    """A JSON-serialisable, run-independent description of ``value`` (no memory addresses)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | torch.Tensor):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return {"array_sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16],
                "shape": list(array.shape)}
    if isinstance(value, bytes):
        return {"bytes_sha256": hashlib.sha256(value).hexdigest()[:16]}
    return {"object": f"{type(value).__module__}.{type(value).__qualname__}"}


def raw_records(dataset: Dataset) -> list[dict[str, Any]]:
    """The raw records of a ``RecordDataset`` (or a ``Subset`` of one) without opening any image."""
    if isinstance(dataset, Subset):
        base = raw_records(dataset.dataset)
        return [base[i] for i in dataset.indices]
    records = getattr(dataset, "records", None)
    if records is None:
        raise CacheRefused(f"cannot cache {type(dataset).__name__}: only record datasets (unipt.data) are supported")
    return list(records)


def base_dataset(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def dataset_fingerprint(dataset: Dataset, name: str, split: str, options: dict[str, Any]) -> dict[str, Any]:
    """Name, split, loader options, number of records and a hash of every record's non-media fields
    (image *paths* are hashed, image pixels are not)."""
    digest = hashlib.sha256()
    records = raw_records(dataset)
    for record in records:
        slim = {k: v for k, v in record.items() if k not in MEDIA_KEYS}
        digest.update(json.dumps(jsonable(slim), sort_keys=True).encode())
        digest.update(b"\n")
    return {"name": name, "split": split, "options": jsonable(options), "num_records": len(records),
            "records_sha256": digest.hexdigest()[:32]}


def record_targets(record: dict[str, Any], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The non-tensor targets of one loaded record (label, item_index, answers, box + image size, and the
    ``extra`` fields, e.g. the labels of other tasks)."""
    targets = {k: jsonable(record[k]) for k in (*TARGET_KEYS, *extra) if k in record}
    if "box" in record and not (record.get("width") and record.get("height")):
        image = record.get("image")
        if image is None:
            raise CacheRefused(f"record {record.get('image_path')} has a box but no image size to normalise it")
        targets["width"], targets["height"] = image.size
    return targets


def describe_preprocess(prep: Any) -> dict[str, Any]:
    """What a preprocessor does: image size + normalisation, or tokenizer + max_length."""
    if dataclasses.is_dataclass(prep) and not isinstance(prep, type):
        out: dict[str, Any] = {"kind": type(prep).__name__}
        for f in dataclasses.fields(prep):
            value = getattr(prep, f.name)
            out[f.name] = _describe_tokenizer(value) if hasattr(value, "get_vocab") else jsonable(value)
        return out
    return {"kind": f"{type(prep).__module__}.{type(prep).__qualname__}"}


def _describe_tokenizer(tokenizer: Any) -> dict[str, Any]:
    vocab = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]
    return {"class": type(tokenizer).__name__, "vocab_sha256": digest,
            "padding_side": getattr(tokenizer, "padding_side", None),
            "do_lower_case": getattr(tokenizer, "do_lower_case", None)}


def tower_identity(field: str, backbone: Any, module: FrozenTapMethod) -> dict[str, Any]:
    """Identity of one UniPT (or frozen-probe) tower: backbone name + fingerprint, tap selection, preprocessing and
    record field."""
    # The method is not part of the identity: the taps depend only on the backbone, the tap selection and
    # the preprocessing, so a cache built for a UniPT tower also serves a frozen probe on the same taps.
    return {
        "backbone": backbone.name,
        "field": field,
        "fingerprint": dict(module.backbone_fingerprint),
        "taps": jsonable(module.tap_identity()),
        "preprocessing": describe_preprocess(backbone.preprocess),
    }


def check_cacheable(towers: dict[str, tuple[str, Any, torch.nn.Module, str]], dataset: Dataset | None,
                    data_options: dict[str, Any]) -> None:
    """Refuse a run whose activations are not a fixed function of the data.

    Args:
        towers: ``{name: (record field, Backbone, adapted module, method name)}``.
        dataset: the split to cache (``None``: check its image transform later).
        data_options: ``config.data.options``.
    """
    reasons = []
    for name, (field, _, module, method) in towers.items():
        if not isinstance(module, FrozenTapMethod):
            reasons.append(f"tower {name!r} uses method {method!r}: only UniPT and frozen towers read frozen taps "
                           "(other methods change the backbone's activations while training)")
            continue
        if module.backbone_train_mode:
            option = "keep_backbone_dropout" if method == "unipt" else "backbone_train_mode"
            reasons.append(f"tower {name!r} keeps backbone dropout ({option}=True): its activations "
                           f"change every epoch, a cache would freeze one draw; set "
                           f"towers.{name}.options.{option}=false")
        if field == "video":
            reasons.append(f"tower {name!r} reads videos, which the cache does not store yet")
    transform = getattr(base_dataset(dataset), "transform", None) if dataset is not None else None
    if transform is not None and not getattr(transform, "deterministic", False):
        reasons.append(f"the dataset applies an image transform ({type(transform).__name__}); random data "
                       "augmentation would be frozen into the cache. Drop it, or set transform.deterministic = True "
                       "if it is not random")
    for key, value in data_options.items():
        if "augment" in key.lower() and value:
            reasons.append(f"data.options.{key}={value!r} asks for random data augmentation, which a cache "
                           "would freeze")
    if reasons:
        raise CacheRefused("this run cannot use an activation cache:\n  " + "\n  ".join(reasons))


def differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    """Every leaf where ``stored`` and ``current`` disagree, as ``"path: cache=X, run=Y"``."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(stored) | set(current)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored:
                out.append(f"{path}: missing in the cache, run={_short(current[key])}")
            elif key not in current:
                out.append(f"{path}: cache={_short(stored[key])}, missing in this run")
            else:
                out.extend(differences(stored[key], current[key], path))
        return out
    if jsonable(stored) != jsonable(current):
        return [f"{prefix}: cache={_short(stored)}, run={_short(current)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(jsonable(value))
    return text if len(text) <= 120 else text[:117] + "..."
