"""Which test examples each reviewer rates: a seeded sample, with a planned overlap.

    batch(order, number=1, settings=ReviewConfig(batch_size=40, overlap=10))

Every reviewer gets the same `overlap` examples (so agreement is measured on a known set) and
`batch_size - overlap` examples of their own, drawn in turn from one seeded shuffle of the test
set, so two reviewers cover different examples until the set runs out. The same seed and the
same predictions give the same batches; a reviewer's batch depends only on their number (order
of first login), never on what others rated.
"""

from __future__ import annotations

import math
import random

from sftflow.config.review import ReviewConfig

Z95 = 1.959964


def shared_set(order: list[str], settings: ReviewConfig) -> list[str]:
    """The examples every reviewer rates (all of them when the batch is the whole set)."""
    shuffled = random.Random(settings.seed).sample(order, len(order))
    return shuffled if settings.batch_size >= len(order) else shuffled[:settings.overlap]


def batch(order: list[str], number: int, settings: ReviewConfig) -> list[str]:
    """Reviewer `number`'s examples, in the order they are shown (shared ones mixed in)."""
    shuffled = random.Random(settings.seed).sample(order, len(order))
    if settings.batch_size >= len(order):
        chosen = shuffled
    else:
        shared, rest = shuffled[:settings.overlap], shuffled[settings.overlap:]
        own = settings.batch_size - settings.overlap
        chosen = shared + [rest[(number * own + j) % len(rest)] for j in range(min(own, len(rest)))]
    return random.Random(f"{settings.seed}:{number}").sample(chosen, len(chosen))


def half_width(n: int) -> float:
    """The widest a 95% interval of a rate gets over n examples (at 50%): the plan's precision."""
    return Z95 * math.sqrt(0.25 / n) if n else 1.0


def examples_needed(margin: float) -> int:
    """Rated examples for a 95% interval of at most ±margin on a rate."""
    return math.ceil((Z95 * 0.5 / margin) ** 2)


def plan_text(order: list[str], settings: ReviewConfig) -> str:
    """The sample-size statement shown before anyone rates."""
    size = min(settings.batch_size, len(order))
    overlap = len(shared_set(order, settings))
    need = settings.min_ratings
    return (f"Your batch: {size} examples, {overlap} of them also rated by every other reviewer (to measure "
            f"agreement). The report decides a human gate only from {need} rated examples: a win rate over "
            f"{need} examples is known to about ±{100 * half_width(need):.0f} points (95% interval); "
            f"±10 points needs {examples_needed(0.10)}.")
