"""Whole systems from the paper that UniPT adapts, with their released checkpoints' key layouts."""
