"""Training-curve plot: loss per step and the primary eval metric per epoch (PNG, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_history(history: list[dict[str, Any]], path: Path, metric: str, title: str = "training") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.5))
    losses = [loss for record in history for loss in record.get("losses", [])]
    ax_loss.plot(range(1, len(losses) + 1), losses, lw=1)
    ax_loss.set(xlabel="step", ylabel="train loss", title=f"{title}: loss")
    epochs = [r["epoch"] for r in history if r.get("eval")]
    values = [r["eval"][metric] for r in history if r.get("eval")]
    ax_metric.plot(epochs, values, marker="o")
    ax_metric.set(xlabel="epoch", ylabel=metric, title=f"{title}: eval {metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
