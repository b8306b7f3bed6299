"""What the human ratings say: tuned-vs-base win rate with a confidence interval, score
means, flag rates with Wilson intervals and their denominators, and how much reviewers agree
on every rubric item (percent agreement, Cohen's kappa with a bootstrap interval: linearly
weighted for the ordinal 1-5 scores, unweighted for the preferred answer and the flags).

`sftflow report` merges this into eval/metrics.json under "human" (eval/human.py) and checks the gates
named `human_*` there (e.g. `human_win_rate: ">= 0.6"`): review comes after eval, so eval
leaves those gates to report, and a human gate with fewer than review.min_ratings rated
examples says "not enough ratings" (the verdict does not pass) rather than deciding.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from pathlib import Path

from sftflow.config.review import ReviewConfig
from sftflow.errors import SftflowError
from sftflow.io import read_jsonl
from sftflow.ratings import current
from sftflow.review.assign import batch, shared_set
from sftflow.review.identity import Identities, Reviewer
from sftflow.review.store import FLAGS, MODELS, SCORES, ReviewStore
from sftflow.stats import bootstrap_ci, cohen_kappa, percentiles, resample_index

PREFERENCE_VALUE = {"tuned": 1.0, "tie": 0.5, "base": 0.0}  # a tie is half a win
# Every rubric item, for agreement: the preference, both scores and both flags of each model.
AGREEMENT_ITEMS = ("preferred", *(f"{m}_{f}" for f in (*SCORES, *FLAGS) for m in MODELS))
# The 1-5 scores are ordinal: their kappa is linearly weighted, so 4 against 5 is a near miss
# rather than the full disagreement that unweighted kappa counts it as. The preferred answer
# and the flags are categories: unweighted.
WEIGHTED_ITEMS = frozenset(f"{m}_{s}" for s in SCORES for m in MODELS)


def db_path(run_dir: Path) -> Path:
    return Path(run_dir) / "eval" / "review.sqlite"


def load_predictions(run_dir: Path) -> tuple[list[str], dict[str, dict]]:
    """The examples to review, in predictions.jsonl order, by id (a repeated id is reviewed once)."""
    path = Path(run_dir) / "eval" / "predictions.jsonl"
    if not path.exists():
        raise SftflowError(f"{path}: not found; run `sftflow eval` first")
    order: list[str] = []
    rows: dict[str, dict] = {}
    for n, r in enumerate(read_jsonl(path), start=1):
        if "base" not in r:
            raise SftflowError(f"{path}: no base-model outputs to compare with; set eval.compare_base: true "
                               "and re-run `sftflow eval`")
        missing = [k for k in ("id", "prompt", "reference", "tuned") if k not in r]
        if missing or not isinstance(r["prompt"], list):
            raise SftflowError(f"{path}: row {n} lacks {', '.join(missing) or 'a prompt message list'}; "
                               "re-run `sftflow eval`")
        rid = str(r["id"])
        if rid not in rows:
            order.append(rid)
            rows[rid] = r
    if not order:
        raise SftflowError(f"{path}: no predictions to review")
    return order, rows


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def wilson(count: int, n: int) -> dict:
    """A rate with its 95% Wilson interval and its denominator (sound at small n and at 0%)."""
    if not n:
        return {"mean": None, "ci95": None, "count": 0, "n": 0}
    from scipy.stats import binomtest

    ci = binomtest(count, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {"mean": count / n, "ci95": [float(ci.low), float(ci.high)], "count": count, "n": n}


def _score(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "ci95": None, "n": 0}
    lo, hi = bootstrap_ci(values)
    return {"mean": sum(values) / len(values), "ci95": [lo, hi], "n": len(values)}


def _kappa(a: list, b: list, weights: str | None = None) -> dict:
    """Cohen's kappa with a bootstrap interval over the shared examples (None where undefined)."""
    kappa = cohen_kappa(a, b, weights)
    ci = None
    if kappa is not None and len(a) >= 2:
        draws = [cohen_kappa([a[i] for i in idx], [b[i] for i in idx], weights) for idx in resample_index(len(a))]
        draws = [k for k in draws if k is not None]
        ci = list(percentiles(draws)) if draws else None
    same = _mean([float(x == y) for x, y in zip(a, b, strict=True)])
    return {"agreement": same, "kappa": kappa, "kappa_ci95": ci, "n": len(a), "weights": weights}


def agreement(ratings: list[dict]) -> list[dict]:
    """Per pair of reviewers, on the examples both rated (skips left out): every rubric item."""
    by_reviewer: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in ratings:
        if not r["skipped"]:
            by_reviewer[r["reviewer"]][r["example_id"]] = r
    pairs = []
    for first, second in combinations(sorted(by_reviewer), 2):
        common = sorted(set(by_reviewer[first]) & set(by_reviewer[second]))
        row: dict = {"reviewers": [first, second], "examples": len(common)}
        for item in AGREEMENT_ITEMS:
            row[item] = _kappa([by_reviewer[first][e][item] for e in common],
                               [by_reviewer[second][e][item] for e in common],
                               "linear" if item in WEIGHTED_ITEMS else None)
        pairs.append(row)
    return pairs


def summarise_ratings(order: list[str], predictions: dict[str, dict], ratings: list[dict],
                      settings: ReviewConfig | None = None, reviewers: list[Reviewer] | None = None) -> dict:
    """What the ratings say. Every rate carries its count and denominator (ratings, not test
    examples), so nothing over 14 ratings reads as if it covered the test set."""
    settings = settings or ReviewConfig()
    valid = current(ratings, predictions)
    rated = [r for r in valid if not r["skipped"]]
    known = {r.name: r for r in reviewers or []}
    progress = {}
    for name in sorted({r["reviewer"] for r in ratings} | set(known)):
        mine = [r for r in valid if r["reviewer"] == name]
        done = sum(not r["skipped"] for r in mine)
        who = known.get(name)
        size = len(batch(order, who.number, settings)) if who else None
        progress[name] = {"rated": done, "skipped": len(mine) - done, "batch": size,
                          "submitted": bool(who and who.submitted)}
    # Several reviewers of one example count once (their mean): examples are the unit of
    # the bootstrap, so an example rated twice does not look like twice the evidence.
    per_example: dict[str, list[float]] = defaultdict(list)
    for r in rated:
        per_example[r["example_id"]].append(PREFERENCE_VALUE[r["preferred"]])
    wins = [sum(v) / len(v) for v in per_example.values()]
    win_rate = None
    if wins:
        lo, hi = bootstrap_ci(wins)
        win_rate = {"mean": sum(wins) / len(wins), "ci95": [lo, hi], "n": len(wins)}
    per_model = {}
    for m in MODELS:
        block = {s: _score([r[f"{m}_{s}"] for r in rated]) for s in SCORES}
        block.update({f"{f}_rate": wilson(sum(bool(r[f"{m}_{f}"]) for r in rated), len(rated)) for f in FLAGS})
        per_model[m] = block
    flags = [{"example_id": r["example_id"], "reviewer": r["reviewer"], "model": m, "kind": f,
              "span": r[f"{m}_span"] or "", "note": r[f"{m}_note"] or ""}
             for r in rated for m in MODELS for f in FLAGS if r[f"{m}_{f}"]]
    raters = defaultdict(set)
    for r in rated:
        raters[r["example_id"]].add(r["reviewer"])
    return {
        "examples": len(order),
        "examples_rated": len(per_example),
        "ratings": len(rated),
        "skipped": len(valid) - len(rated),
        "stale": len(ratings) - len(valid),
        "reviewers": progress,
        "plan": {"batch_size": settings.batch_size, "overlap": len(shared_set(order, settings)),
                 "seed": settings.seed, "min_ratings": settings.min_ratings},
        "shared_examples": sum(len(v) >= 2 for v in raters.values()),
        "win_rate": win_rate,
        "preferences": {k: sum(r["preferred"] == k for r in rated) for k in PREFERENCE_VALUE},
        "tuned": per_model["tuned"],
        "base": per_model["base"],
        "agreement": agreement(valid),
        "flags": flags,
    }


def human_metrics(run_dir: Path, settings: ReviewConfig | None = None) -> dict | None:
    """The ratings summary for the report, or None when nobody has rated anything yet."""
    if not db_path(run_dir).exists():
        return None
    order, predictions = load_predictions(run_dir)
    store = ReviewStore(db_path(run_dir))
    summary = summarise_ratings(order, predictions, store.ratings(), settings, Identities(store).all())
    return summary if summary["ratings"] else None
