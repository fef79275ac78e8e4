"""Whole systems from the paper that UniPT adapts, with their released checkpoints' key layouts
(:mod:`unipt.models.clipvil`, :mod:`unipt.models.mdetr`)."""
