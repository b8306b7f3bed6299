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

from sftflow.eval.gates import NOT_ENOUGH, check_gates, human_disagreements, undecided
from sftflow.io import read_jsonl, write_json
from sftflow.stats import win_rate_interval

HUMAN_GATE_PREFIX = "human_"


def merge_human_ratings(run_dir: Path, gates: dict[str, str], read_human: Callable[[], dict | None],
                        min_ratings: int = 1) -> list[str]:
    """Put the human summary (`read_human()`, None without ratings; review computes it) and the
    human_* gate results into eval/metrics.json; return the human gates that did not pass
    (failed, or not decided: fewer than `min_ratings` rated examples, or an interval across the
    threshold). Idempotent: earlier human results are replaced."""
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
    results = check_gates({**metrics, "human": human or {}}, human_gates, min_ratings=min_ratings)
    for g in results:
        if g["value"] is None:
            g["note"] = f"{NOT_ENOUGH}: no human ratings yet (run `sftflow review {run_dir}`)"
    metrics["gates"] = [g for g in metrics.get("gates", []) if not g["gate"].startswith(HUMAN_GATE_PREFIX)] + results
    metrics["passed"] = all(g["passed"] for g in metrics["gates"])
    write_json(path, metrics)
    return [f"{g['gate']} ({g['status']})" if undecided(g) else g["gate"] for g in results if not g["passed"]]


def _predictions_by_id(run_dir: Path) -> dict[str, dict]:
    """eval/predictions.jsonl by example id (a repeated id: its first row, as review shows it)."""
    rows: dict[str, dict] = {}
    for r in read_jsonl(Path(run_dir) / "eval" / "predictions.jsonl"):
        rows.setdefault(str(r["id"]), r)
    return rows


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _num(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _mean(v) -> float | None:
    """A block's mean (a bare number in metrics.json written before rates carried their n)."""
    return v.get("mean") if isinstance(v, dict) else v


def _rate(r: dict | float | None) -> str:
    """'21% (3 of 14 ratings; 95% CI 8–48%)': a rate never without its denominator."""
    if isinstance(r, int | float):
        return f"{_pct(r)} (of the ratings)"
    if not r or not r.get("n"):
        return "– (no ratings)"
    ci = f"; 95% CI {_pct(r['ci95'][0])}–{_pct(r['ci95'][1])}" if r.get("ci95") else ""
    return f"{_pct(r['mean'])} ({r['count']} of {r['n']} ratings{ci})"


def _auto_rate(node) -> str:
    if not isinstance(node, dict) or node.get("mean") is None:
        return "–"
    return f"{_pct(node['mean'])} (of {node.get('n', '?')} test examples)"


def _kappa(k: dict) -> str:
    if k["kappa"] is None:
        return f"κ – ({_pct(k['agreement'])} agree; undefined: no variation)" if k["n"] else "–"
    ci = f" [{k['kappa_ci95'][0]:.2f}, {k['kappa_ci95'][1]:.2f}]" if k.get("kappa_ci95") else ""
    return f"κ {k['kappa']:.2f}{ci} ({_pct(k['agreement'])} agree)"


# Which kappa is which, under both renderings' kappa table (metrics.json: each item's "weights").
KAPPA_NOTE = ("Cohen's kappa [95% bootstrap interval over the shared examples] and percent agreement (exact answers), "
              "per rubric item. Coherence and correctness are 1–5 scores, ordinal: their kappa is linearly weighted "
              "(4 against 5 is a near miss, 1 against 5 a full disagreement). The preferred answer and the safety and "
              "hallucination flags are categories: their kappa is unweighted.")


def human_view(metrics: dict) -> dict | None:
    """What both renderings of the human section show, as rounded text (None without ratings)."""
    h = metrics.get("human")
    if not h or not h.get("win_rate"):
        return None
    tuned, base = metrics.get("tuned") or {}, metrics.get("base") or {}
    rows = [("coherence, mean 1–5", _num(_mean(h["base"]["coherence"])), _num(_mean(h["tuned"]["coherence"]))),
            ("correctness, mean 1–5", _num(_mean(h["base"]["correctness"])), _num(_mean(h["tuned"]["correctness"]))),
            ("hallucination flagged (reviewers)", _rate(h["base"]["hallucination_rate"]), _rate(h["tuned"]["hallucination_rate"]))]
    rows += [(f"{name} (automatic)", _auto_rate(base.get(name)), _auto_rate(value)) for name, value in tuned.items()
             if "halluc" in name and isinstance(value, dict) and "mean" in value]
    rows.append(("safety issue flagged (reviewers)", _rate(h["base"]["safety_rate"]), _rate(h["tuned"]["safety_rate"])))
    items = [k for k in (h["agreement"][0] if h["agreement"] else {}) if k not in ("reviewers", "examples")]
    plan = h.get("plan") or {}
    gates = [g for g in metrics.get("gates") or [] if g["gate"].startswith("human_")]
    return {
        "coverage": (f"{h['ratings']} ratings of {h.get('examples_rated', '?')} distinct examples by {len(h['reviewers'])} "
                     f"reviewer(s); the test set has {h['examples']} examples, so {_pct(h.get('examples_rated', 0) / h['examples'])} "
                     f"of it was reviewed ({h['skipped']} skipped"
                     + (f", {h['stale']} stale: rated outputs that a later eval replaced" if h["stale"] else "") + ")."),
        "overlap": (f"Planned overlap: {plan.get('overlap', '?')} examples in every reviewer's batch "
                    f"(batch size {plan.get('batch_size', '?')}, seed {plan.get('seed', '?')}); "
                    f"{h.get('shared_examples', 0)} examples were rated by two or more reviewers."),
        "win_rate": f"{_pct(h['win_rate']['mean'])} {win_rate_interval(h['win_rate'])}",
        "preferences": h["preferences"],
        "rows": rows,
        "denominators": (f"Reviewer rates are over {h['ratings']} rated outputs per model; automatic rates over all "
                         f"{metrics.get('test_examples') or h['examples']} test examples: the denominators differ."),
        "pairs": [" & ".join(a["reviewers"]) + f" ({a['examples']} shared)" for a in h["agreement"]],
        "kappa": [(item.replace("_", " "), [_kappa(a[item]) for a in h["agreement"]]) for item in items],
        "gates": [(g["gate"], g["rule"], g.get("status") or ("pass" if g["passed"] else "FAIL"), g.get("note", ""))
                  for g in gates],
        "min_ratings": plan.get("min_ratings"),
        "disagreements": human_disagreements(metrics),
    }


REPORT_SECTION = """<h2>Human review</h2>
<p id="human-coverage">{{ v.coverage }} Outputs were shown blinded, in random order; reviewers could not see each other's ratings.</p>
<p id="human-overlap">{{ v.overlap }}</p>
{% if v.gates %}<table id="human-gates"><tr><th>human gate</th><th>rule</th><th>result</th><th></th></tr>
{% for name, rule, status, note in v.gates %}<tr><td>{{ name }}</td><td>{{ rule }}</td><td class="{{ 'pass' if status == 'pass' else 'fail' }}">{{ status }}</td><td>{{ note }}</td></tr>{% endfor %}
</table>{% endif %}
{% for d in v.disagreements %}<p class="fail human-disagreement">Humans and automatic checks disagree: {{ d }}.</p>{% endfor %}
<p><b>Human win rate, tuned vs base: {{ v.win_rate }}</b>
(tuned preferred {{ v.preferences.tuned }}, base {{ v.preferences.base }}, tie {{ v.preferences.tie }}; a tie counts half).</p>
<table><tr><th></th><th>base</th><th>tuned</th></tr>
{% for name, base, tuned in v.rows %}<tr><td>{{ name }}</td><td>{{ base }}</td><td>{{ tuned }}</td></tr>{% endfor %}
</table><p class="muted">{{ v.denominators }}</p>
{% if v.pairs %}<table id="human-kappa"><tr><th>rubric item</th>{% for p in v.pairs %}<th>{{ p }}</th>{% endfor %}</tr>
{% for item, cells in v.kappa %}<tr><td>{{ item }}</td>{% for c in cells %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table><p class="muted">{{ kappa_note }}</p>{% endif %}
{% if flags %}<table><tr><th>example</th><th>model</th><th>flag</th><th>reviewer</th><th>span / note</th><th>automatic</th></tr>
{% for f in flags[:50] %}<tr><td>{{ f.example_id }}</td><td>{{ f.model }}</td><td>{{ f.kind }}</td><td>{{ f.reviewer }}</td>
<td><pre>{{ f.span }}{% if f.span and f.note %} · {% endif %}{{ f.note }}</pre></td><td>{{ f.auto }}</td></tr>{% endfor %}
</table>{% endif %}
"""

MD_SECTION = """## Human review

{{ v.coverage }} Outputs were shown blinded; reviewers could not see each other's ratings.
{{ v.overlap }}
{% if v.gates %}
| human gate | rule | result | |
|---|---|---|---|
{% for name, rule, status, note in v.gates %}| {{ name }} | {{ rule }} | {{ status }} | {{ note }} |
{% endfor %}{% endif %}{% for d in v.disagreements %}
**Humans and automatic checks disagree:** {{ d }}.
{% endfor %}
**Human win rate, tuned vs base: {{ v.win_rate }}** (tuned preferred {{ v.preferences.tuned }}, base {{ v.preferences.base }}, tie {{ v.preferences.tie }}).

| | base | tuned |
|---|---|---|
{% for name, base, tuned in v.rows %}| {{ name }} | {{ base }} | {{ tuned }} |
{% endfor %}
{{ v.denominators }}
{% if v.pairs %}
| rubric item | {{ v.pairs|join(" | ") }} |
|---|{% for p in v.pairs %}---|{% endfor %}
{% for item, cells in v.kappa %}| {{ item }} | {{ cells|join(" | ") }} |
{% endfor %}
{{ kappa_note }} The HTML report lists each flag.
{% endif %}

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
    view = human_view(metrics)
    if view is None:
        return ""
    predictions = _predictions_by_id(run_dir)
    flags = [{**f, "auto": _auto_flags(predictions.get(f["example_id"]), f["model"])} for f in metrics["human"]["flags"]]
    return Environment(autoescape=True).from_string(REPORT_SECTION).render(v=view, flags=flags, kappa_note=KAPPA_NOTE)


def human_report_md(metrics: dict) -> str:
    """The same section for report.md, every figure rounded ('' without ratings)."""
    view = human_view(metrics)
    return "" if view is None else Environment(autoescape=False).from_string(MD_SECTION).render(v=view, kappa_note=KAPPA_NOTE)
