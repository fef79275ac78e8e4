"""Tasks by name: ``build_task(name, **options)``, ``list_tasks()``, ``register_task(name, factory)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unipt.tasks.base import Task
from unipt.tasks.classification import Classification
from unipt.tasks.grounding import Grounding
from unipt.tasks.mdetr_grounding import MDETRGrounding
from unipt.tasks.retrieval import ImageTextRetrieval
from unipt.tasks.video_retrieval import VideoTextRetrieval
from unipt.tasks.vqa import AnswerPrediction

# The dict after the class holds default options (how "gqa" is the VQA head in GQA mode without a second class).
_BUILTIN: dict[str, tuple[Callable[..., Task], dict[str, Any]]] = {
    "retrieval": (ImageTextRetrieval, {}),
    "video_retrieval": (VideoTextRetrieval, {}),
    "vqa": (AnswerPrediction, {"mode": "vqa"}),
    "gqa": (AnswerPrediction, {"mode": "gqa"}),
    "grounding": (Grounding, {}),
    "mdetr_grounding": (MDETRGrounding, {}),
    "classification": (Classification, {}),
}
_CUSTOM: dict[str, Callable[..., Task]] = {}


def register_task(name: str, factory: Callable[..., Task]) -> None:
    """Make ``build_task(name, ...)`` call ``factory(...)``; refuses to shadow an existing name."""
    if name in _BUILTIN or name in _CUSTOM:
        raise ValueError(f"task {name!r} is already registered")
    _CUSTOM[name] = factory


def list_tasks() -> list[str]:
    """Names accepted by :func:`build_task`, sorted."""
    return sorted({*_BUILTIN, *_CUSTOM})


def build_task(name: str, **options: Any) -> Task:
    """Build the task registered as ``name`` with constructor ``options``.

    Raises:
        ValueError: unknown ``name`` (the message lists the known ones).
        TypeError: an option the task's constructor does not take (the message names the task).
    """
    if name in _CUSTOM:
        factory: Callable[..., Task] = _CUSTOM[name]
        defaults: dict[str, Any] = {}
    elif name in _BUILTIN:
        factory, defaults = _BUILTIN[name]
    else:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    try:
        return factory(**{**defaults, **options})
    except TypeError as err:
        raise TypeError(f"cannot build task {name!r} with options {sorted(options)}: {err}") from err
