"""Model cards: a ``README.md`` in the Hugging Face model-card format beside saved weights.

``UniPTModel.save_pretrained`` and every trained run (``unipt train``) write one: YAML front matter
(``library_name: unipt``, ``base_model``, ``tags``, ``pipeline_tag``, ``datasets``, ``metrics`` and a
``model-index`` with the measured results), then what the folder holds, the UniPT config, trainable
parameters, measured memory and step time, and a Python snippet that loads it. The front matter is
built with ``huggingface_hub.ModelCardData``, so the Hub reads it as it reads any model card.

``base_model`` is set only for backbones that are Hub models (the Hub rejects ids that do not
exist); packaged, random and ``timm:`` backbones are named in the card's text instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unipt.packaged_backbones import PACKAGED

MARKER = "<!-- written by unipt: rewritten on every save; remove this line to keep your edits -->"
CARD_NAME = "README.md"

# Packaged short names -> the Hub ids of the same weights / data.
HUB_MODELS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2",
              "all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
HUB_DATASETS = {"rotten_tomatoes": "cornell-movie-review-data/rotten_tomatoes",
                "fashion_mnist": "zalando-datasets/fashion_mnist"}
PIPELINE_TAGS = {("classification", "text"): "text-classification",
                 ("classification", "image"): "image-classification",
                 "retrieval": "feature-extraction", "video_retrieval": "feature-extraction",
                 "vqa": "visual-question-answering", "gqa": "visual-question-answering",
                 "grounding": "zero-shot-object-detection"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class CardFacts:
    """What a card states. Measured fields stay ``None`` when they were not measured.

    ``metrics`` maps a split's name (``test``, ``val``) to its metrics; ``towers`` maps a tower name to
    ``{"backbone", "method", "trainable_parameters", "variant"}``.
    """

    title: str
    backbones: list[str]
    towers: dict[str, dict[str, Any]]
    config_text: str
    config_language: str
    loading_snippet: str
    trainable_parameters: int
    total_parameters: int
    task: str | None = None
    modality: str | None = None
    datasets: list[str] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    peak_memory_mb: float | None = None
    memory_kind: str | None = None
    step_time_ms: float | None = None
    files: dict[str, str] = field(default_factory=dict)


def hub_model_id(backbone: str | None) -> str | None:
    """The Hub id of a backbone name, or None (packaged names map to their Hub original; local
    folders, ``random:`` / ``timm:`` / ``torchvision:`` names have none)."""
    if not backbone:
        return None
    name = backbone.split(":", 1)[1] if backbone.startswith(("clip-vision:", "clip-text:", "t5-encoder:")) else backbone
    if name.lower() in HUB_MODELS:
        return HUB_MODELS[name.lower()]
    if ":" in name or Path(name).expanduser().exists() or not _HUB_ID.match(name):
        return None
    return None if name.lower() in PACKAGED else name


def render(facts: CardFacts) -> str:
    """The card's text: YAML front matter + Markdown body."""
    from huggingface_hub import EvalResult, ModelCardData

    bases = sorted({b for b in (hub_model_id(n) for n in facts.backbones) if b})
    pipeline = PIPELINE_TAGS.get((facts.task, facts.modality)) or PIPELINE_TAGS.get(facts.task or "")
    datasets = [HUB_DATASETS.get(d, d) for d in facts.datasets]
    results = [
        EvalResult(task_type=pipeline or facts.task or "other", dataset_type=datasets[0], dataset_name=datasets[0],
                   dataset_split=split, metric_type=name, metric_value=round(float(value), 4))
        for split, values in facts.metrics.items() for name, value in values.items()
    ] if datasets else []
    data = ModelCardData(
        library_name="unipt", base_model=(bases[0] if len(bases) == 1 else bases) or None,
        tags=["unipt", "parallel-tuning", "side-tuning", "peft", *([facts.task] if facts.task else [])],
        pipeline_tag=pipeline, datasets=datasets or None,
        metrics=sorted({m for values in facts.metrics.values() for m in values}) or None,
        model_name=facts.title if results else None, eval_results=results or None,
    )
    return f"---\n{data.to_yaml()}\n---\n{MARKER}\n\n" + _body(facts)


def _body(facts: CardFacts) -> str:
    trainable, total = facts.trainable_parameters, facts.total_parameters
    share = f" ({100 * trainable / total:.2f} % of {total:,})" if total else ""
    lines = [
        f"# {facts.title}",
        "",
        "A **UniPT** (Universal Parallel Tuning, CVPR 2024) side network, made with the `unipt` library: "
        "the frozen backbone runs with no autograd graph and a small parallel network reads its intermediate "
        "layers. The backbone weights are **not** in this folder; load them as usual and attach the side "
        "network (snippet below).",
        "",
        "## Towers",
        "",
        "| tower | backbone | method | trainable parameters | variant |",
        "|---|---|---|---:|---|",
    ]
    for name, tower in facts.towers.items():
        lines.append(f"| {name} | `{tower['backbone']}` | {tower['method']} | {tower['trainable_parameters']:,} | "
                     f"{tower.get('variant') or ''} |")
    lines += ["", f"Trainable parameters in all: **{trainable:,}**{share}.", ""]
    if facts.metrics:
        lines += ["## Results", "", "| split | metric | value |", "|---|---|---:|"]
        lines += [f"| {split} | {name} | {value:.4g} |"
                  for split, values in facts.metrics.items() for name, value in values.items()]
        lines.append("")
    lines += ["## Cost (measured)", ""]
    if facts.peak_memory_mb is None and facts.step_time_ms is None:
        lines.append("Not measured for this save; `unipt train` measures peak memory and step time and writes "
                     "them into the run's card.")
    else:
        if facts.peak_memory_mb is not None:
            lines.append(f"- peak memory: {facts.peak_memory_mb:,.1f} MB ({facts.memory_kind or 'measured'})")
        if facts.step_time_ms is not None:
            lines.append(f"- training step time: {facts.step_time_ms:,.1f} ms (median over the run)")
    lines += ["", "## How to load", "", "```python", facts.loading_snippet.strip(), "```", ""]
    if facts.files:
        lines += ["## Files", ""] + [f"- `{name}`: {what}" for name, what in facts.files.items()] + [""]
    lines += ["## Configuration", "", f"```{facts.config_language}", facts.config_text.strip(), "```", ""]
    return "\n".join(lines)


def write_card(folder: str | Path, facts: CardFacts) -> Path | None:
    """Write ``folder/README.md``; a README without unipt's marker line (the user's own) is left alone
    and None is returned."""
    path = Path(folder) / CARD_NAME
    if path.is_file() and MARKER not in path.read_text(encoding="utf-8", errors="replace"):
        return None
    tmp = path.with_name(f".{CARD_NAME}.tmp")
    tmp.write_text(render(facts), encoding="utf-8")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------ sources of facts
def model_facts(model: Any, *, datasets: list[str] | None = None, metrics: dict[str, dict[str, float]] | None = None,
                peak_memory_mb: float | None = None, step_time_ms: float | None = None,
                backbone_name: str | None = None, side: Any = None, config: Any = None) -> CardFacts:
    """Facts of a :class:`~unipt.UniPTModel` (what ``save_pretrained`` writes); ``side`` / ``config``: one of
    its side networks and its config (default: the active one's)."""
    side = side if side is not None else model.side
    config = config if config is not None else model.config
    named = backbone_name or _backbone_name(model.backbone)  # "" when the backbone carries no name
    backbone = named or type(model.backbone).__name__
    trainable = sum(p.numel() for p in side.parameters())
    total = trainable + sum(p.numel() for p in model.backbone.parameters())
    hub = hub_model_id(named)
    load = (f'AutoModel.from_pretrained("{hub}")' if hub else f"...  # the backbone this was trained on: {backbone}")
    snippet = "\n".join([
        "import unipt",
        *(["from transformers import AutoModel", ""] if hub else [""]),
        f"backbone = {load}",
        'model = unipt.UniPTModel.from_pretrained(backbone, "path/to/this/folder")',
        "out = model(**inputs)   # AdaptedOutput: last_hidden_state [B, L, D], pooled [B, D]",
    ])
    return CardFacts(
        title=f"UniPT side network for {backbone}", backbones=[named] if named else [],
        towers={"backbone": {"backbone": backbone, "method": "unipt", "trainable_parameters": trainable,
                             "variant": model.variant}},
        config_text=json.dumps(config.to_dict(), indent=2), config_language="json",
        loading_snippet=snippet, trainable_parameters=trainable, total_parameters=total,
        datasets=list(datasets or []), metrics=dict(metrics or {}), peak_memory_mb=peak_memory_mb,
        step_time_ms=step_time_ms,
        files={"unipt_side.safetensors": "the side network's weights",
               "unipt_config.json": "its UniPTConfig and the backbone's structure / weight fingerprint"},
    )


def run_facts(config: Any, system: Any, summary: dict[str, Any], run_dir: str | Path) -> CardFacts:
    """Facts of a finished ``unipt train`` run (``config``: RunConfig, ``summary``: FitResult.to_dict())."""
    import yaml

    towers = {}
    for name, spec in config.towers.items():
        module = system.towers[name]
        towers[name] = {"backbone": spec.backbone, "method": spec.method,
                        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
                        "variant": getattr(module, "variant", "")}
    modalities = {backbone.modality for _, backbone in system.tower_info.values()}
    metrics = {config.data.test_split or "test": summary["test_metrics"]} if summary.get("test_metrics") else {}
    if summary.get("best_metrics"):  # the best epoch on the eval split
        metrics[config.data.eval_split or "eval"] = summary["best_metrics"]
    # a text query when the run reads text (classification of text, text-to-image retrieval), else an image
    args = 'texts=["a moving, funny film"]' if "text" in modalities else 'images=["photo.jpg"]'

    snippet = "\n".join([
        "from unipt.train.inference import load_run, predict",
        "",
        f'trainer = load_run("{Path(run_dir).as_posix()}")   # rebuilds the towers, loads checkpoints/best',
        f"print(predict(trainer, {args}))   # or: unipt predict {Path(run_dir).as_posix()} ...",
    ])
    return CardFacts(
        title=f"UniPT {config.task.name} on {config.data.dataset}",
        backbones=[spec.backbone for spec in config.towers.values()], towers=towers,
        config_text=yaml.safe_dump(config.to_dict(), sort_keys=False), config_language="yaml",
        loading_snippet=snippet, trainable_parameters=summary["trainable_parameters"],
        total_parameters=summary["total_parameters"], task=config.task.name,
        modality=next(iter(modalities)) if len(modalities) == 1 else None, datasets=[config.data.dataset],
        metrics=metrics, peak_memory_mb=_measured(summary.get("peak_memory_mb")),
        memory_kind=summary.get("memory_kind"), step_time_ms=_measured(summary.get("step_time_ms")),
        files={"checkpoints/best/<tower>/": "the best epoch's tower, a save_pretrained folder "
                                            "(UniPT: unipt_side.safetensors + unipt_config.json)",
               "checkpoints/best/head.safetensors": "the best epoch's task head (and fusion layers)",
               "checkpoints/last/": "the last epoch (the same + the optimiser state, to resume)",
               "run_config.yaml": "the run config", "summary.json": "metrics and measured costs",
               "metrics.jsonl": "per-epoch log", "training_curve.png": "loss and metric per epoch"},
    )


def _measured(value: float | None) -> float | None:
    """None for a missing or NaN measurement (a run with no timed step)."""
    return None if value is None or value != value else float(value)


def _backbone_name(backbone: Any) -> str:
    """The name a Hugging Face model was loaded from (hub id or folder), else ``""``."""
    config = getattr(backbone, "config", None)
    name = getattr(backbone, "name_or_path", None) or getattr(config, "_name_or_path", None)
    return str(name) if name else ""
