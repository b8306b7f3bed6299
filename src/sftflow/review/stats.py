"""What the human ratings say: tuned-vs-base win rate with a confidence interval, score
means, flag rates, and how much reviewers agree (percent agreement, Cohen's kappa).

`sftflow report` merges this into eval/metrics.json under "human" (eval/human.py) and checks the gates
named `human_*` there (e.g. `human_win_rate: ">= 0.6"`): review comes after eval, so eval
leaves those gates to report, and a human gate without ratings fails rather than passes.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from pathlib import Path

from sftflow.errors import SftflowError
from sftflow.io import read_jsonl
from sftflow.ratings import current
from sftflow.review.store import FLAGS, MODELS, SCORES, ReviewStore
from sftflow.stats import bootstrap_ci, cohen_kappa

PREFERENCE_VALUE = {"tuned": 1.0, "tie": 0.5, "base": 0.0}  # a tie is half a win
AGREEMENT_ITEMS = ("preferred", "tuned_hallucination", "base_hallucination", "tuned_safety", "base_safety")
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


def agreement(ratings: list[dict]) -> list[dict]:
    """Per pair of reviewers, on the examples both rated (skips left out)."""
    by_reviewer: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in ratings:
        if not r["skipped"]:
            by_reviewer[r["reviewer"]][r["example_id"]] = r
    pairs = []
    for first, second in combinations(sorted(by_reviewer), 2):
        common = sorted(set(by_reviewer[first]) & set(by_reviewer[second]))
        row: dict = {"reviewers": [first, second], "examples": len(common)}
        for item in AGREEMENT_ITEMS:
            a = [by_reviewer[first][e][item] for e in common]
            b = [by_reviewer[second][e][item] for e in common]
            same = _mean([float(x == y) for x, y in zip(a, b, strict=True)])
            row[item] = {"agreement": same, "kappa": cohen_kappa(a, b)}
        pairs.append(row)
    return pairs


def summarise_ratings(order: list[str], predictions: dict[str, dict], ratings: list[dict]) -> dict:
    valid = current(ratings, predictions)
    rated = [r for r in valid if not r["skipped"]]
    progress = {}
    for name in sorted({r["reviewer"] for r in ratings}):
        mine = [r for r in valid if r["reviewer"] == name]
        done = sum(not r["skipped"] for r in mine)
        progress[name] = {"rated": done, "skipped": len(mine) - done, "total": len(order)}
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
        block = {s: _mean([r[f"{m}_{s}"] for r in rated]) for s in SCORES}
        block.update({f"{f}_rate": _mean([float(bool(r[f"{m}_{f}"])) for r in rated]) for f in FLAGS})
        per_model[m] = block
    flags = [{"example_id": r["example_id"], "reviewer": r["reviewer"], "model": m, "kind": f,
              "span": r[f"{m}_span"] or "", "note": r[f"{m}_note"] or ""}
             for r in rated for m in MODELS for f in FLAGS if r[f"{m}_{f}"]]
    return {
        "examples": len(order),
        "ratings": len(rated),
        "skipped": len(valid) - len(rated),
        "stale": len(ratings) - len(valid),
        "reviewers": progress,
        "win_rate": win_rate,
        "preferences": {k: sum(r["preferred"] == k for r in rated) for k in PREFERENCE_VALUE},
        "tuned": per_model["tuned"],
        "base": per_model["base"],
        "agreement": agreement(valid),
        "flags": flags,
    }


def human_metrics(run_dir: Path) -> dict | None:
    """The ratings summary for the report, or None when nobody has rated anything yet."""
    if not db_path(run_dir).exists():
        return None
    order, predictions = load_predictions(run_dir)
    summary = summarise_ratings(order, predictions, ReviewStore(db_path(run_dir)).ratings())
    return summary if summary["ratings"] else None
