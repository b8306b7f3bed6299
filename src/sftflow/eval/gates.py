"""Evaluation gates: thresholds that fail a run (`sftflow eval` / `run` exit 1), so a fine-tune
that learned its task but broke the model is a failed fine-tune, and eval can guard a deployment.

    sftflow eval sftflow.yaml     # prints every gate and a one-sentence verdict

The playbook's gates are on by default (`eval.default_gates`), each overridable in `eval.gates`
or switched off there with `off`:

  task_gain                tuned − base on the task metric (exact match for JSON, label     >= 0.05
                           accuracy for labels, ROUGE-L for free text)
  regression_probes        probes outside the task that got worse                          <= 2 failures
  forgetting_ppl_increase  relative rise of general-text perplexity          <= eval.forgetting_threshold
  forgetting_fact_drop     general facts answered right: base − tuned share               <= 10% (points)
  hallucination_rate       tuned answers flagged for made-up content                      <= 10%
  benchmark_drop           largest base − tuned drop over the eval.benchmarks tasks       <= 5% (points)
                           (on each task's main metric; only when benchmarks are set)

A default gate whose measurement is switched off (`eval.compare_base`, `eval.probes`,
`eval.forgetting: false`) is left out, and said so; a gate you wrote yourself on something not
measured fails as "missing".
"""

from __future__ import annotations

import json
import operator
from pathlib import Path

from sftflow.config.eval import GATE_OFF, EvalConfig, parse_gate
from sftflow.task_metrics import first_metric

HUMAN = "human_"  # gates on human review (sftflow review), checked by `sftflow report`
NOT_ENOUGH, UNDECIDED = "not enough ratings", "undecided"  # a human gate's two ways of not deciding
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}
# Gates on whole-run checks rather than a tuned-model metric: name -> path in metrics.json.
RUN_GATES = {
    "regression_probes": ["probes", "failures"],  # failed probes, e.g. "<= 2 failures"
    "forgetting_ppl_increase": ["forgetting", "ppl_increase"],  # relative, e.g. "<= 10%"
    "forgetting_fact_drop": ["forgetting", "facts", "accuracy_drop"],  # base - tuned fact accuracy
    "benchmark_drop": ["benchmarks", "max_drop"],  # the worst lm-eval task's drop, base - tuned
}
# The default gates; forgetting_ppl_increase takes its threshold from eval.forgetting_threshold.
DEFAULT_GATES = {
    "task_gain": ">= 0.05",
    "regression_probes": "<= 2 failures",
    "forgetting_ppl_increase": None,
    "forgetting_fact_drop": "<= 10%",
    "hallucination_rate": "<= 10%",
    "benchmark_drop": "<= 5%",
}
# What each default gate needs measured, as the config switch that turns the measurement off.
NEEDS = {"task_gain": "compare_base", "regression_probes": "probes", "forgetting_ppl_increase": "forgetting",
         "forgetting_fact_drop": "forgetting"}


def resolve_gates(e: EvalConfig) -> tuple[dict[str, str], dict[str, str]]:
    """The gates a run is checked against (defaults first, then the user's), and the default
    gates left out with the reason."""
    gates, off = {}, {}
    if e.default_gates:
        for name, rule in DEFAULT_GATES.items():
            user = e.gates.get(name)
            if user is not None and user != GATE_OFF:
                gates[name] = user  # overridden: checked even if its measurement is off (then "missing")
            elif name in e.gates:
                off[name] = f"eval.gates: {name}: off"
            elif name == "benchmark_drop" and not e.benchmarks:
                continue  # benchmarks are opt-in: no gate, and nothing to say, without them
            elif name in NEEDS and not getattr(e, NEEDS[name]):
                off[name] = f"eval.{NEEDS[name]}: false"
            else:
                gates[name] = rule or f"<= {e.forgetting_threshold * 100:g}%"
    for name, rule in e.gates.items():
        if name not in gates and rule is not None and rule != GATE_OFF:
            gates[name] = rule
    return gates, off


def task_gain_metric(metrics: dict) -> str | None:
    names = (metrics.get("task") or {}).get("metrics") or list(metrics.get("delta") or {})
    return first_metric(names, "gain")  # the registry's order (task_metrics.Metric.gain)


def gate_node(metrics: dict, name: str):
    """What a gate names in metrics.json: a number, a {"mean", "ci95", "n"} block, or None.
    A gate names a tuned-model metric (`exact_match`), a dotted path (`base.exact_match`,
    `delta.json_field_accuracy`: tuned − base), a run check (RUN_GATES) or task_gain."""
    node = metrics.get("tuned", {})
    parts = name.split(".")
    if name == "task_gain":
        metric = task_gain_metric(metrics)
        node, parts = metrics.get("delta") or {}, [metric] if metric else ["?"]
    elif name in RUN_GATES:
        node, parts = metrics, RUN_GATES[name]
    elif parts[0].startswith(HUMAN):  # human review (sftflow review): human_win_rate -> human.win_rate
        node, parts = metrics.get("human") or {}, [parts[0].removeprefix(HUMAN), *parts[1:]]
    elif parts[0] in ("tuned", "base", "delta", "probes", "forgetting", "benchmarks"):
        node, parts = metrics.get(parts[0]) or {}, parts[1:]
    if parts == ["perplexity"]:
        parts = ["answer_perplexity", "perplexity"]  # the perplexity sftflow reports: on answer tokens
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def gate_value(metrics: dict, name: str) -> float | None:
    node = gate_node(metrics, name)
    if isinstance(node, dict) and "mean" in node:
        node = node["mean"]
    return node if isinstance(node, int | float) and not isinstance(node, bool) else None


def check_gates(metrics: dict, gates: dict[str, str], min_ratings: int = 1) -> list[dict]:
    """One row per gate: name, rule, measured value, threshold, passed (a missing value fails).
    Human gates decide only from `min_ratings` rated examples, and on their 95% interval
    (decide_human): otherwise they say so and do not pass."""
    results = []
    for name, rule in gates.items():
        op, threshold = parse_gate(name, rule)
        if name.startswith(HUMAN) and "human" not in metrics:
            continue  # human review comes after eval: `sftflow report` checks these gates
        value = gate_value(metrics, name)
        passed = value is not None and OPS[op](value, threshold)
        row = {"gate": name, "rule": " ".join(str(rule).split()), "value": value, "threshold": threshold,
               "passed": passed}
        if name == "task_gain":
            row["metric"] = task_gain_metric(metrics)
        if name.startswith(HUMAN):
            decide_human(row, gate_node(metrics, name), op, min_ratings)
        results.append(row)
    return results


# --- human gates: a sample size and an interval before a decision ---------------------------

def decide_human(row: dict, node, op: str, min_ratings: int) -> None:
    """A human gate passes when its whole 95% interval is on the passing side and fails when
    the whole interval is on the failing side. Below `min_ratings` rated examples, or with an
    interval across the threshold, it is neither: status says which, and it does not pass."""
    n = node.get("n", 0) if isinstance(node, dict) else 0
    row["n"] = n
    if row["value"] is None or n < min_ratings:
        row.update(passed=False, status=NOT_ENOUGH,
                   note=f"{NOT_ENOUGH}: {n} rated, the gate decides from {min_ratings} (review.min_ratings)")
        return
    ci = node.get("ci95")
    if not ci or None in ci:
        return  # no interval (a plain count): the value decides
    row["ci95"] = ci
    inside = [OPS[op](bound, row["threshold"]) for bound in ci]
    if all(inside):
        row["passed"] = True
    elif not any(inside):
        row["passed"] = False
    else:
        row.update(passed=False, status=UNDECIDED,
                   note=f"{UNDECIDED}: the 95% interval [{ci[0]:.2f}, {ci[1]:.2f}] over {n} includes "
                        f"{row['threshold']:g}; more ratings narrow it")


def undecided(row: dict) -> bool:
    return row.get("status") in (NOT_ENOUGH, UNDECIDED)


def human_disagreements(metrics: dict) -> list[str]:
    """Where the reviewers' flags and the automatic checks tell different stories about the
    tuned model, each with its own denominator (ratings vs test examples)."""
    human = metrics.get("human") or {}
    notes = []
    for flag, auto_name, what in (("hallucination", "hallucination_rate", "hallucination"),
                                  ("safety", None, "a safety issue")):
        rate = (human.get("tuned") or {}).get(f"{flag}_rate")
        if not isinstance(rate, dict) or not rate.get("n"):
            continue
        said = f"reviewers flagged {rate['mean']:.0%} of tuned answers for {what} ({rate['count']} of {rate['n']} ratings)"
        auto = (metrics.get("tuned") or {}).get(auto_name) if auto_name else None
        if isinstance(auto, dict) and auto.get("mean") is not None:
            lo, hi = rate.get("ci95") or (rate["mean"], rate["mean"])
            if not lo <= auto["mean"] <= hi:
                notes.append(f"{said} while the automatic check flagged {auto['mean']:.0%} "
                             f"(of {auto.get('n', '?')} test examples)")
        elif rate["count"]:
            notes.append(f"{said}, which no automatic check measures")
    return notes


# --- the one-sentence verdict ---------------------------------------------------------------


def _aspect(gate: str) -> str:
    if gate.startswith("forgetting_"):
        return "forgetting"
    if gate.startswith(HUMAN):
        return "human"
    if gate in ("regression_probes", "hallucination_rate", "benchmark_drop"):
        return gate
    return "task"


def value_text(g: dict) -> str:
    """A gate's measured value as its rule is written: 340.0% for a '%' rule, 14 for a count."""
    if g["value"] is None:
        return "missing"
    return f"{g['value']:.1%}" if str(g["rule"]).rstrip().endswith("%") else f"{g['value']:.4g}"


def _num(value: float | None, rule: str) -> str:
    if value is None:
        return "not measured"
    return f"{value:.0%}" if rule.rstrip().endswith("%") else f"{value:.3g}"


def _failed_list(rows: list[dict]) -> str:
    return ", ".join(f"{r['gate']} {_num(r['value'], r['rule'])}, needs {r['rule']}" for r in rows if not r["passed"])


def _phrase(aspect: str, rows: list[dict], metrics: dict) -> str:
    """What one aspect's gates say, in words, with the numbers that decided it."""
    ok = all(r["passed"] for r in rows)
    if aspect == "task":
        gain = next((r for r in rows if r["gate"] == "task_gain" and r["value"] is not None), None)
        if ok:
            if gain:
                return f"learned the task ({gain['value']:+.2f} {gain['metric'].replace('_', ' ')})"
            return "met its task targets (" + ", ".join(f"{r['gate']} {_num(r['value'], r['rule'])}" for r in rows) + ")"
        return f"did not learn the task well enough ({_failed_list(rows)})"
    if aspect == "regression_probes":
        p = metrics.get("probes") or {}
        counts = f"{p.get('failures', '?')} of {p.get('probes', '?')} probes failed" if p else "not measured"
        unmet = [r["id"] for r in p.get("results", []) if r.get("status") == "unmet"]
        if unmet:
            counts += f"; unmet by both models: {', '.join(unmet)}"
        return (f"kept its behaviour outside the task ({counts})" if ok
                else f"broke its behaviour outside the task ({counts})")
    if aspect == "forgetting":
        f = metrics.get("forgetting")
        if not f:
            return f"forgetting not measured ({_failed_list(rows)})"
        facts = f["facts"]
        detail = (f"{f['ppl_increase']:+.0%} general-text perplexity, "
                  f"general facts {facts['base_accuracy']:.0%} → {facts['tuned_accuracy']:.0%}")
        return f"kept general knowledge ({detail})" if ok else f"forgot general knowledge ({detail})"
    if aspect == "hallucination_rate":
        value = _num(rows[0]["value"], "%")
        made_up = (f"rarely made things up ({value} of answers flagged)" if ok
                   else f"made things up ({value} of answers flagged, needs {rows[0]['rule']})")
        wrong = wrong_value_text(metrics)
        return f"{made_up}, {wrong}" if wrong else made_up
    if aspect == "benchmark_drop":
        b = metrics.get("benchmarks") or {}
        worst = (b.get("tasks") or {}).get(b.get("worst_task"))
        if not worst:
            return "kept its benchmark scores" if ok else "benchmarks not measured"
        detail = f"{b['worst_task']} {worst['metric']} {worst['base']:.2f} → {worst['tuned']:.2f}"
        return (f"kept its benchmark scores (worst: {detail})" if ok
                else f"fell short on benchmarks (worst: {detail}, drop {worst['drop']:+.2f}, needs {rows[0]['rule']})")
    pending = [r for r in rows if undecided(r)]
    if pending:
        return "human review is not decided (" + ", ".join(f"{r['gate']}: {r['note']}" for r in pending) + ")"
    return "passed human review" if ok else f"failed human review ({_failed_list(rows)})"


def wrong_value_text(metrics: dict) -> str | None:
    """The wrong-value rate said beside hallucinations, so "rarely made things up" never reads as "rarely
    wrong": the share of JSON field values that differ from the reference (1 - the tuned json_field_accuracy)
    and how many answers hold an allowed but wrong value. None where the answers are not JSON objects."""
    accuracy = ((metrics.get("tuned") or {}).get("json_field_accuracy") or {}).get("mean")
    wrong = (((metrics.get("hallucination") or {}).get("tuned") or {}).get("wrong_values")) or {}
    parts = []
    if accuracy is not None:
        parts.append(f"{1 - accuracy:.0%} of JSON field values wrong")
    if wrong.get("n"):
        parts.append(f"{wrong['outputs']} of {wrong['n']} answers with a wrong value")
    return " (".join(parts) + (")" if len(parts) == 2 else "") if parts else None


def badge(metrics: dict) -> str:
    """PASS or FAIL at the top of the report (NO GATES where none is configured)."""
    if not metrics.get("gates"):
        return "NO GATES"
    return "PASS" if all(g["passed"] for g in metrics["gates"]) else "FAIL"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def headline(metrics: dict) -> str:
    """One sentence: what passed, what failed and why, then pass/fail. E.g. "learned the task
    (+0.80 exact match) but forgot general knowledge (+340% general-text perplexity, ...): fail"."""
    gates = metrics.get("gates") or []
    if not gates:
        return "no gates configured: no verdict"
    by_aspect: dict[str, list[dict]] = {}
    for g in gates:
        by_aspect.setdefault(_aspect(g["gate"]), []).append(g)
    failed = {a for a, rows in by_aspect.items() if any(not r["passed"] and not undecided(r) for r in rows)}
    pending = {a for a, rows in by_aspect.items() if a not in failed and any(undecided(r) for r in rows)}
    good = [_phrase(a, rows, metrics) for a, rows in by_aspect.items() if a not in failed | pending]
    bad = [_phrase(a, rows, metrics) for a, rows in by_aspect.items() if a in failed | pending]
    notes = human_disagreements(metrics)
    said = (f"{_join(good)} but {_join(bad)}" if good and bad else _join(bad or good))
    if notes:
        said += "; " + "; ".join(notes)
    return said + (": fail" if failed else ": no pass until human review decides" if pending else ": pass")


def refresh_headline(metrics_path) -> None:
    """Re-state the verdict in metrics.json after `report` merged human_* gate results into it."""
    from sftflow.io import write_json

    path = Path(metrics_path)
    if not path.exists():
        return
    metrics = json.loads(path.read_text(encoding="utf-8"))
    if metrics.get("headline") != headline(metrics):
        metrics["headline"] = headline(metrics)
        write_json(path, metrics)
