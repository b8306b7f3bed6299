"""The human-review part of eval's results: merging the reviewers' summary into metrics.json
with the human_* gates, and the report's "Human review" section.

    sftflow review runs/quickstart && sftflow report sftflow.yaml

Review comes after eval and computes the summary (sftflow/review/stats.py); eval owns
metrics.json and the report, so the summary is handed in and nothing here imports review.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from jinja2 import Environment

from sftflow.eval.gates import check_gates
from sftflow.io import read_jsonl, write_json
from sftflow.stats import win_rate_interval

HUMAN_GATE_PREFIX = "human_"


def merge_human_ratings(run_dir: Path, gates: dict[str, str], read_human: Callable[[], dict | None]) -> list[str]:
    """Put the human summary (`read_human()`, None without ratings; review computes it) and the
    human_* gate results into eval/metrics.json; return the failed human gates. Idempotent:
    earlier human results are replaced."""
    path = Path(run_dir) / "eval" / "metrics.json"
    human_gates = {k: v for k, v in gates.items() if k.startswith(HUMAN_GATE_PREFIX)}
    if not path.exists():
        return []
    metrics = json.loads(path.read_text(encoding="utf-8"))
    human = read_human()
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


def _predictions_by_id(run_dir: Path) -> dict[str, dict]:
    """eval/predictions.jsonl by example id (a repeated id: its first row, as review shows it)."""
    rows: dict[str, dict] = {}
    for r in read_jsonl(Path(run_dir) / "eval" / "predictions.jsonl"):
        rows.setdefault(str(r["id"]), r)
    return rows


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
    predictions = _predictions_by_id(run_dir)
    flags = [{**f, "auto": _auto_flags(predictions.get(f["example_id"]), f["model"])} for f in human["flags"]]
    tuned, base = metrics.get("tuned") or {}, metrics.get("base") or {}
    auto = [(name, (base.get(name) or {}).get("mean"), value.get("mean")) for name, value in tuned.items()
            if "halluc" in name and isinstance(value, dict) and "mean" in value]
    pct = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    num = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    return Environment(autoescape=True).from_string(REPORT_SECTION).render(
        h={**human, "flags": flags}, auto=auto, pct=pct, num=num, interval=win_rate_interval)
