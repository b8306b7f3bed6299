"""Evaluation gates: thresholds from the config that fail a run (non-zero exit), so
`sftflow eval` can guard a deployment pipeline."""

from __future__ import annotations

import operator

from sftflow.config import parse_gate

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}
# Gates on whole-run checks rather than a tuned-model metric: name -> path in metrics.json.
RUN_GATES = {
    "regression_probes": ["probes", "failures"],  # failed probes, e.g. "== 0 failures"
    "forgetting_ppl_increase": ["forgetting", "ppl_increase"],  # relative, e.g. "< 10%"
    "forgetting_fact_drop": ["forgetting", "facts", "accuracy_drop"],  # base - tuned fact accuracy
}


def gate_value(metrics: dict, name: str) -> float | None:
    """A gate names a tuned-model metric (`exact_match`) or a dotted path (`base.exact_match`)."""
    node = metrics.get("tuned", {})
    parts = name.split(".")
    if name in RUN_GATES:
        node, parts = metrics, RUN_GATES[name]
    elif parts[0].startswith("human_"):  # human review (sftflow review): human_win_rate -> human.win_rate
        node, parts = metrics.get("human") or {}, [parts[0].removeprefix("human_"), *parts[1:]]
    elif parts[0] in ("tuned", "base", "probes", "forgetting"):
        node, parts = metrics.get(parts[0], {}), parts[1:]
    if parts == ["perplexity"]:
        parts = ["answer_perplexity", "perplexity"]  # the perplexity sftflow reports: on answer tokens
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict) and "mean" in node:
        node = node["mean"]
    return node if isinstance(node, int | float) else None


def check_gates(metrics: dict, gates: dict[str, str]) -> list[dict]:
    results = []
    for name, rule in gates.items():
        op, threshold = parse_gate(name, rule)
        if name.startswith("human_") and "human" not in metrics:
            continue  # human review comes after eval: `sftflow report` checks these gates
        value = gate_value(metrics, name)
        passed = value is not None and OPS[op](value, threshold)
        results.append({"gate": name, "rule": " ".join(str(rule).split()), "value": value, "passed": passed})
    return results
