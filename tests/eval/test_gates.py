"""The default gates and the one-sentence verdict, each on hand-computed numbers."""

import pytest
import yaml

from sftflow.config import parse_config
from sftflow.config.eval import EvalConfig
from sftflow.errors import SftflowError
from sftflow.eval.gates import check_gates, gate_value, headline, resolve_gates, value_text
from sftflow.eval.probes import compare_forgetting

MINIMAL = {"data": {"sources": [{"path": "raw.jsonl"}]}, "model": {"name_or_path": "m"}}


def _gates(**eval_cfg):
    return resolve_gates(EvalConfig(**eval_cfg))


def test_the_playbook_gates_are_on_by_default():
    gates, off = _gates()
    assert gates == {"task_gain": ">= 0.05", "regression_probes": "<= 2 failures", "forgetting_ppl_increase": "<= 10%",
                     "forgetting_fact_drop": "<= 10%", "hallucination_rate": "<= 10%"}
    assert off == {}
    # the forgetting gate follows eval.forgetting_threshold
    assert _gates(forgetting_threshold=0.05)[0]["forgetting_ppl_increase"] == "<= 5%"


def test_a_default_gate_is_overridden_in_place_and_user_gates_follow():
    gates, _ = _gates(gates={"exact_match": ">= 0.8", "regression_probes": "== 0 failures"})
    assert list(gates) == ["task_gain", "regression_probes", "forgetting_ppl_increase", "forgetting_fact_drop",
                           "hallucination_rate", "exact_match"]
    assert gates["regression_probes"] == "== 0 failures" and gates["exact_match"] == ">= 0.8"


def test_gates_switch_off_one_by_one_or_all_at_once():
    # YAML reads a bare `off` as false; null and the string "off" mean the same
    cfg = parse_config({**MINIMAL, "eval": yaml.safe_load(
        "gates: {task_gain: off, hallucination_rate: null, forgetting_fact_drop: 'off'}")})
    gates, off = resolve_gates(cfg.eval)
    assert list(gates) == ["regression_probes", "forgetting_ppl_increase"]
    assert off == {"task_gain": "eval.gates: task_gain: off", "forgetting_fact_drop": "eval.gates: forgetting_fact_drop: off",
                   "hallucination_rate": "eval.gates: hallucination_rate: off"}
    # a measurement switched off takes its default gate with it, and says why
    gates, off = _gates(probes=False, forgetting=False, compare_base=False)
    assert list(gates) == ["hallucination_rate"]
    assert off == {"task_gain": "eval.compare_base: false", "regression_probes": "eval.probes: false",
                   "forgetting_ppl_increase": "eval.forgetting: false", "forgetting_fact_drop": "eval.forgetting: false"}
    # ... unless the user asked for that gate explicitly: then it is checked (and fails as missing)
    assert "regression_probes" in _gates(probes=False, gates={"regression_probes": "<= 1"})[0]
    assert _gates(default_gates=False, gates={"exact_match": ">= 0.5"}) == ({"exact_match": ">= 0.5"}, {})
    with pytest.raises(SftflowError, match="gate task_gain: 'on' is not a comparison"):
        parse_config({**MINIMAL, "eval": {"gates": {"task_gain": "on"}}})


def test_task_gain_is_tuned_minus_base_on_the_task_metric():
    json_task = {"task": {"metrics": ["exact_match", "normalized_exact_match", "json_valid", "json_field_accuracy"]},
                 "delta": {"exact_match": {"mean": 0.42}, "json_field_accuracy": {"mean": 0.70}}}
    [row] = check_gates(json_task, {"task_gain": ">= 0.05"})
    assert row == {"gate": "task_gain", "rule": ">= 0.05", "value": 0.42, "threshold": 0.05, "passed": True,
                   "metric": "exact_match"}
    text_task = {"task": {"metrics": ["exact_match", "token_f1", "rouge_l"]},
                 "delta": {"exact_match": {"mean": 0.0}, "rouge_l": {"mean": 0.03}}}
    [row] = check_gates(text_task, {"task_gain": ">= 0.05"})
    assert (row["metric"], row["value"], row["passed"]) == ("rouge_l", 0.03, False)
    # exactly at the threshold passes; no base measured fails as missing
    assert check_gates({**json_task, "delta": {"exact_match": {"mean": 0.05}}}, {"task_gain": ">= 0.05"})[0]["passed"]
    assert check_gates({**json_task, "delta": {}}, {"task_gain": ">= 0.05"})[0]["value"] is None
    assert gate_value(json_task, "delta.json_field_accuracy") == 0.70


def test_regression_probes_gate_counts_failed_probes():
    rule = {"regression_probes": "<= 2 failures"}
    assert check_gates({"probes": {"failures": 2, "probes": 14}}, rule)[0]["passed"]
    assert not check_gates({"probes": {"failures": 3, "probes": 14}}, rule)[0]["passed"]


def _forgetting(base_ppl, tuned_ppl, base_right, tuned_right, n=20):
    facts = [{"prompt": f"q{i}", "expect": "yes"} for i in range(n)]
    answer = lambda k: ["yes"] * k + ["no"] * (n - k)  # noqa: E731
    return compare_forgetting({"source": "s", "records": 5, "base": {"perplexity": base_ppl},
                               "tuned": {"perplexity": tuned_ppl}}, facts, answer(base_right), answer(tuned_right),
                              threshold=0.10)


def test_forgetting_gates_on_perplexity_rise_and_lost_facts():
    gates = {"forgetting_ppl_increase": "<= 10%", "forgetting_fact_drop": "<= 10%"}
    # 1.48 -> 1.60 is +8.1%; 17 -> 16 of 20 facts is a drop of 5 points: both pass
    kept = check_gates({"forgetting": _forgetting(1.48, 1.60, 17, 16)}, gates)
    assert [(r["gate"], round(r["value"], 4), r["passed"]) for r in kept] == [
        ("forgetting_ppl_increase", 0.0811, True), ("forgetting_fact_drop", 0.05, True)]
    # 1.48 -> 5.98 is +304%; 17 -> 0 of 20 is a drop of 85 points: both fail
    lost = check_gates({"forgetting": _forgetting(1.48, 5.98, 17, 0)}, gates)
    assert [(r["gate"], round(r["value"], 4), r["passed"]) for r in lost] == [
        ("forgetting_ppl_increase", 3.0405, False), ("forgetting_fact_drop", 0.85, False)]
    # 2.5 -> 2.75 is exactly +10%: the gate passes and the report does not flag it; 2.5 -> 2.76 fails, flagged
    edge = _forgetting(2.5, 2.75, 10, 10)
    assert check_gates({"forgetting": edge}, gates)[0]["passed"] and not edge["flagged"]
    over = _forgetting(2.5, 2.76, 10, 10)
    assert not check_gates({"forgetting": over}, gates)[0]["passed"] and over["flagged"]
    # values are printed the way their rule is written
    assert [value_text(r) for r in lost] == ["304.1%", "85.0%"]
    assert value_text({"rule": "<= 2 failures", "value": 13}) == "13"
    assert value_text({"rule": ">= 0.05", "value": None}) == "missing"


def test_hallucination_gate_is_the_tuned_rate():
    rule = {"hallucination_rate": "<= 10%"}
    assert check_gates({"tuned": {"hallucination_rate": {"mean": 0.10}}}, rule)[0]["passed"]
    assert not check_gates({"tuned": {"hallucination_rate": {"mean": 19 / 180}}}, rule)[0]["passed"]


def _run(em_gain=0.42, probe_failures=1, base_ppl=1.48, tuned_ppl=1.52, facts=(17, 17), hallucination=0.0):
    metrics = {"task": {"metrics": ["exact_match", "json_valid"]}, "delta": {"exact_match": {"mean": em_gain}},
               "tuned": {"hallucination_rate": {"mean": hallucination}},
               "probes": {"failures": probe_failures, "probes": 14},
               "forgetting": _forgetting(base_ppl, tuned_ppl, *facts)}
    metrics["gates"] = check_gates(metrics, resolve_gates(EvalConfig())[0])
    return metrics


def test_headline_says_what_passed_what_failed_and_why():
    assert headline(_run()) == (
        "learned the task (+0.42 exact match), kept its behaviour outside the task (1 of 14 probes failed), kept "
        "general knowledge (+3% general-text perplexity, general facts 85% → 85%) and rarely made things up "
        "(0% of answers flagged): pass")
    assert headline(_run(probe_failures=13, tuned_ppl=5.98, facts=(17, 0))) == (
        "learned the task (+0.42 exact match) and rarely made things up (0% of answers flagged) but broke its "
        "behaviour outside the task (13 of 14 probes failed) and forgot general knowledge (+304% general-text "
        "perplexity, general facts 85% → 0%): fail")
    # the perplexity alone is enough to fail the forgetting aspect
    assert headline(_run(em_gain=0.01, tuned_ppl=1.7)).startswith(
        "kept its behaviour outside the task (1 of 14 probes failed) and rarely made things up (0% of answers "
        "flagged) but did not learn the task well enough (task_gain 0.01, needs >= 0.05) and forgot general "
        "knowledge (+15% general-text perplexity")
    assert headline({"gates": []}) == "no gates configured: no verdict"
