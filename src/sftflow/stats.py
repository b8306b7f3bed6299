"""The statistics every stage reports with: bootstrap intervals, paired deltas, agreement.

    from sftflow.stats import bootstrap_ci, paired_delta
    lo, hi = bootstrap_ci([1.0, 0.0, 1.0, 1.0])

Eval puts an interval on every metric, review on the human win rate, the judge on its
agreement with reviewers; all of them resample here, with one fixed seed, so the same
numbers give the same interval everywhere.
"""

from __future__ import annotations

import math
from collections import Counter

N_BOOTSTRAP = 1000
# Below this many rated examples a bootstrap interval says more about the resampling than the
# models (one rating gives [0%, 0%]): the rate is shown with "n too small" instead.
MIN_INTERVAL_N = 10


def resample_index(k: int, n: int = N_BOOTSTRAP, seed: int = 0):
    """The same seed gives the same resamples for base and tuned: their deltas are paired."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, k, size=(n, k))


def percentiles(samples, level: float = 0.95) -> tuple[float, float]:
    import numpy as np

    lo, hi = np.quantile(np.asarray(samples, dtype=float), [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_ci(values: list[float], n: int = N_BOOTSTRAP, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    if not values:
        return (math.nan, math.nan)
    import numpy as np

    means = np.asarray(values, dtype=float)[resample_index(len(values), n, seed)].mean(axis=1)
    return percentiles(means, level)


def summarise(values: list[float]) -> dict:
    lo, hi = bootstrap_ci(values)
    return {"mean": sum(values) / len(values) if values else math.nan, "ci95": [lo, hi], "n": len(values)}


def paired_delta(tuned: list[float], base: list[float]) -> dict:
    """tuned - base on the same examples, with a paired bootstrap interval."""
    diffs = [t - b for t, b in zip(tuned, base, strict=True)]
    return summarise(diffs)


def cohen_kappa(a: list, b: list, weights: str | None = None) -> float | None:
    """Agreement beyond chance between two raters on the same items, 1 - observed / expected
    disagreement; None where undefined (no items, or both raters always gave the one same
    answer). Unweighted, any two different answers disagree fully: right for categories.
    `weights="linear"` is for ordinal numbers (scores 1-5): a disagreement costs its distance,
    so 4 against 5 is a near miss and 1 against 5 a full disagreement."""
    if weights not in (None, "linear"):
        raise ValueError(f"cohen_kappa: weights is None or 'linear', not {weights!r}")
    n = len(a)
    if n == 0:
        return None

    def cost(x, y) -> float:
        return abs(x - y) if weights == "linear" else float(x != y)

    observed = sum(cost(x, y) for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[x] * count_b[y] * cost(x, y) for x in count_a for y in count_b) / (n * n)
    if expected == 0:
        return None
    return 1.0 - observed / expected


def win_rate_interval(win_rate: dict) -> str:
    """'[95% CI 52%, 81%] over 40 examples', or, below MIN_INTERVAL_N examples, 'over 3 examples
    (n too small for an interval: ...)'."""
    n = win_rate["n"]
    examples = f"{n} example{'s' if n != 1 else ''}"
    lo, hi = win_rate.get("ci95") or (None, None)
    if n < MIN_INTERVAL_N or lo is None:
        return f"over {examples} (n too small for a 95% interval: rate at least {MIN_INTERVAL_N})"
    return f"[95% CI {100 * lo:.0f}%, {100 * hi:.0f}%] over {examples}"
