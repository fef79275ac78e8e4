"""Commands built for task heads (cache, plan) do not cover decoder LMs yet: say so, and what to use."""

from __future__ import annotations

from unipt.train.config import RunConfig


def is_causal_lm_run(config: RunConfig) -> bool:
    return config.task.name == "causal_lm"


def refuse_causal_lm(config: RunConfig, command: str, instead: str) -> None:
    """Refuse a ``causal_lm`` run in ``unipt <command>``, naming ``instead`` (what to use)."""
    if is_causal_lm_run(config):
        raise ValueError(f"`unipt {command}` does not cover task causal_lm yet; {instead}")
