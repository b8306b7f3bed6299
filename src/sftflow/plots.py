"""The loss-curve figure, shared by the run folder's loss_curve.png and the HTML report."""

from __future__ import annotations

import math


def loss_figure(history: list[dict]):
    """Train and validation loss against the optimizer step (matplotlib Figure), or None without data."""
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and math.isfinite(h["loss"])]
    val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and math.isfinite(h["eval_loss"])]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="#4477aa")
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss", color="#ee6677")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
