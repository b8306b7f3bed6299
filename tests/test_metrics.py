import math

from sftflow.eval.gates import check_gates, gate_value
from sftflow.eval.metrics import bootstrap_ci, exact_match, json_match, json_valid, summarise


def test_task_metrics():
    assert exact_match(" {\"a\": 1}\n", '{"a": 1}') == 1.0
    assert exact_match('{"a":1}', '{"a": 1}') == 0.0
    assert json_match('{"b": 2, "a":1}', '{"a": 1, "b": 2}') == 1.0
    assert json_match('{"a": 1', '{"a": 1}') == 0.0
    assert json_valid('{"a": [1, 2]}') == 1.0 and json_valid("HELLO") == 0.0


def test_bootstrap_interval_contains_mean_and_narrows():
    small = summarise([1.0, 0.0] * 10)
    large = summarise([1.0, 0.0] * 500)
    assert small["ci95"][0] <= 0.5 <= small["ci95"][1]
    assert (large["ci95"][1] - large["ci95"][0]) < (small["ci95"][1] - small["ci95"][0]) / 3
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def test_gates():
    metrics = {"tuned": {"exact_match": {"mean": 0.8}, "answer_perplexity": {"perplexity": 12.0}},
               "base": {"exact_match": {"mean": 0.1}}}
    assert gate_value(metrics, "exact_match") == 0.8
    assert gate_value(metrics, "base.exact_match") == 0.1
    assert gate_value(metrics, "answer_perplexity.perplexity") == 12.0
    assert gate_value(metrics, "perplexity") == 12.0
    assert gate_value(metrics, "rouge") is None
    results = check_gates(metrics, {"exact_match": ">= 0.8", "answer_perplexity.perplexity": "< 10", "rouge": "> 0"})
    assert [(r["gate"], r["passed"]) for r in results] == [
        ("exact_match", True), ("answer_perplexity.perplexity", False), ("rouge", False)]
