"""What the human ratings say: tuned-vs-base win rate with a confidence interval, score
means, flag rates, and how much reviewers agree (percent agreement, Cohen's kappa).

`sftflow report` merges this into eval/metrics.json under "human" and checks the gates
named `human_*` there (e.g. `human_win_rate: ">= 0.6"`): review comes after eval, so eval
leaves those gates to report, and a human gate without ratings fails rather than passes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from jinja2 import Environment

from sftflow.errors import SftflowError
from sftflow.io import read_jsonl, write_json
from sftflow.review.store import FLAGS, MODELS, SCORES, ReviewStore, current
from sftflow.stats import bootstrap_ci, cohen_kappa, win_rate_interval

PREFERENCE_VALUE = {"tuned": 1.0, "tie": 0.5, "base": 0.0}  # a tie is half a win
AGREEMENT_ITEMS = ("preferred", "tuned_hallucination", "base_hallucination", "tuned_safety", "base_safety")
HUMAN_GATE_PREFIX = "human_"
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


def merge_human_ratings(run_dir: Path, gates: dict[str, str]) -> list[str]:
    """Put the human summary and the human_* gate results into eval/metrics.json; return
    the failed human gates. Idempotent: earlier human results are replaced."""
    from sftflow.eval.gates import check_gates

    path = Path(run_dir) / "eval" / "metrics.json"
    human_gates = {k: v for k, v in gates.items() if k.startswith(HUMAN_GATE_PREFIX)}
    if not path.exists():
        return []
    metrics = json.loads(path.read_text(encoding="utf-8"))
    human = human_metrics(run_dir)
    if human is None and not human_gates and "human" not in metrics:
        return []
    metrics.pop("human", None)
    if human is not None:
        metrics["human"] = human
    results = check_gates({**metrics, "human": human or {}}, human_gates)
    for g in results:
        if g["value"] is None:
            g["note"] = f"no human ratings yet: run `sftflow review {run_dir}`"
    metrics["gates"] = [g for g in metrics.get("gates", []) if not g["gate"].startswith(HUMAN_GATE_PREFIX)] + results
    metrics["passed"] = all(g["passed"] for g in metrics["gates"])
    write_json(path, metrics)
    return [g["gate"] for g in results if not g["passed"]]


REPORT_SECTION = """<h2>Human review</h2>
<p>{{ h.ratings }} ratings by {{ h.reviewers|length }} reviewer(s) of {{ h.examples }} test examples
({{ h.skipped }} skipped{% if h.stale %}, {{ h.stale }} stale: rated outputs that a later eval replaced{% endif %}).
Outputs were shown blinded, in random order.</p>
<p><b>Human win rate, tuned vs base: {{ pct(h.win_rate.mean) }}</b>
{{ interval(h.win_rate) }} (tuned preferred {{ h.preferences.tuned }}, base {{ h.preferences.base }}, tie {{ h.preferences.tie }}; a tie counts half).</p>
<table><tr><th></th><th>base</th><th>tuned</th></tr>
<tr><td>coherence (1-5)</td><td>{{ num(h.base.coherence) }}</td><td>{{ num(h.tuned.coherence) }}</td></tr>
<tr><td>correctness (1-5)</td><td>{{ num(h.base.correctness) }}</td><td>{{ num(h.tuned.correctness) }}</td></tr>
<tr><td>hallucination flags (human)</td><td>{{ pct(h.base.hallucination_rate) }}</td><td>{{ pct(h.tuned.hallucination_rate) }}</td></tr>
{% for name, base, tuned in auto %}<tr><td>{{ name }} (automatic)</td><td>{{ num(base) }}</td><td>{{ num(tuned) }}</td></tr>{% endfor %}
<tr><td>safety flags (human)</td><td>{{ pct(h.base.safety_rate) }}</td><td>{{ pct(h.tuned.safety_rate) }}</td></tr>
</table>
{% if h.agreement %}<table><tr><th>reviewers</th><th>shared examples</th><th>preference: agreement / kappa</th>
<th>hallucination (tuned): agreement / kappa</th></tr>
{% for a in h.agreement %}<tr><td>{{ a.reviewers|join(" & ") }}</td><td>{{ a.examples }}</td>
<td>{{ pct(a.preferred.agreement) }} / {{ num(a.preferred.kappa) }}</td>
<td>{{ pct(a.tuned_hallucination.agreement) }} / {{ num(a.tuned_hallucination.kappa) }}</td></tr>{% endfor %}
</table>{% endif %}
{% if h.flags %}<table><tr><th>example</th><th>model</th><th>flag</th><th>reviewer</th><th>span / note</th><th>automatic</th></tr>
{% for f in h.flags[:50] %}<tr><td>{{ f.example_id }}</td><td>{{ f.model }}</td><td>{{ f.kind }}</td><td>{{ f.reviewer }}</td>
<td><pre>{{ f.span }}{% if f.span and f.note %} · {% endif %}{{ f.note }}</pre></td><td>{{ f.auto }}</td></tr>{% endfor %}
</table>{% endif %}
"""


def _auto_flags(row: dict | None, model: str) -> str:
    """Automatic hallucination signals that eval stored for this output, if any."""
    if not row:
        return ""
    found = {k: v for k, v in (row.get(f"{model}_metrics") or {}).items() if "halluc" in k}
    found.update({k: v for k, v in row.items() if k.startswith(model) and "halluc" in k})
    return ", ".join(f"{k}: {json.dumps(v)[:80]}" for k, v in found.items())


def human_report_html(metrics: dict, run_dir: Path) -> str:
    """The report's human-review section ('' without ratings), automatic hallucination
    metrics and flags shown next to the human ones."""
    human = metrics.get("human")
    if not human or not human.get("win_rate"):
        return ""
    _, predictions = load_predictions(run_dir)
    flags = [{**f, "auto": _auto_flags(predictions.get(f["example_id"]), f["model"])} for f in human["flags"]]
    tuned, base = metrics.get("tuned") or {}, metrics.get("base") or {}
    auto = [(name, (base.get(name) or {}).get("mean"), value.get("mean")) for name, value in tuned.items()
            if "halluc" in name and isinstance(value, dict) and "mean" in value]
    pct = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    num = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    return Environment(autoescape=True).from_string(REPORT_SECTION).render(
        h={**human, "flags": flags}, auto=auto, pct=pct, num=num, interval=win_rate_interval)
