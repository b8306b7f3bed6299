"""Issue 32, defect 4: small samples called small. Human gates decide only from
review.min_ratings rated examples and on their 95% interval; the verdict names a disagreement
between reviewers' flags and the automatic checks; every rate has its denominator; kappa for
every rubric item, safety included, with an interval; report.md rounds its figures.
"""

import math
import re

import pytest

from sftflow.eval.gates import check_gates, headline


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval, written out (the oracle; the code asks scipy)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _human(n_examples: int, win: float, ci: list[float], flagged: int, ratings: int) -> dict:
    from sftflow.review.stats import wilson

    rate = wilson(flagged, ratings)
    zero = wilson(0, ratings)
    return {"win_rate": {"mean": win, "ci95": ci, "n": n_examples}, "ratings": ratings,
            "tuned": {"hallucination_rate": rate, "safety_rate": rate}, "base": {"hallucination_rate": zero}}


AUTO = {"tuned": {"exact_match": {"mean": 0.9, "ci95": [0.85, 0.95], "n": 191},
                  "hallucination_rate": {"mean": 0.0, "ci95": [0.0, 0.0], "n": 191}}}


def test_wilson_interval_and_denominator():
    from sftflow.review.stats import wilson

    r = wilson(3, 14)
    assert (r["count"], r["n"]) == (3, 14) and r["mean"] == pytest.approx(3 / 14)
    assert r["ci95"] == pytest.approx(_wilson(3, 14), abs=1e-6)
    assert wilson(0, 8)["ci95"][0] == 0.0 and wilson(0, 8)["ci95"][1] == pytest.approx(_wilson(0, 8)[1], abs=1e-6)


def test_a_human_gate_on_too_few_ratings_neither_passes_nor_fails():
    """8 examples used to pass or fail human_win_rate outright."""
    metrics = {**AUTO, "human": _human(8, 0.75, [0.5, 1.0], 0, 8)}
    (row,) = check_gates(metrics, {"human_win_rate": ">= 0.6"}, min_ratings=30)
    assert row["status"] == "not enough ratings" and row["passed"] is False and row["n"] == 8
    assert "8 rated, the gate decides from 30" in row["note"]
    gates = check_gates(metrics, {"exact_match": ">= 0.5"}) + [row]
    verdict = headline({**metrics, "gates": gates})
    assert verdict.endswith(": no pass until human review decides") and ": pass" not in verdict
    assert "human review is not decided (human_win_rate: not enough ratings" in verdict


def test_a_human_gate_decides_on_its_interval():
    decided = {"win_rate": {"mean": 0.8, "ci95": [0.7, 0.9], "n": 40}}
    (ok,) = check_gates({"human": decided}, {"human_win_rate": ">= 0.6"}, min_ratings=30)
    (bad,) = check_gates({"human": decided}, {"human_win_rate": ">= 0.95"}, min_ratings=30)
    (unsure,) = check_gates({"human": decided}, {"human_win_rate": ">= 0.75"}, min_ratings=30)
    assert ok["passed"] and "status" not in ok
    assert not bad["passed"] and "status" not in bad
    assert unsure["status"] == "undecided" and not unsure["passed"] and "[0.70, 0.90] over 40 includes 0.75" in unsure["note"]
    (rate,) = check_gates({"human": _human(40, 0.8, [0.7, 0.9], 1, 40)}, {"human_tuned.hallucination_rate": "<= 0.2"},
                          min_ratings=30)
    assert rate["passed"] and rate["ci95"][1] < 0.2  # 1 of 40: Wilson upper bound 12.9%


def test_the_verdict_names_a_disagreement_with_the_automatic_checks():
    """Reviewers flagged 3 of 14 tuned outputs while the automatic check said 0%: the verdict
    was a green "rarely made things up (0%)" without a word about it."""
    metrics = {**AUTO, "human": _human(10, 0.6, [0.3, 0.9], 3, 14)}
    gates = check_gates(metrics, {"hallucination_rate": "<= 10%"})
    verdict = headline({**metrics, "gates": gates})
    assert ("reviewers flagged 21% of tuned answers for hallucination (3 of 14 ratings) while the automatic check "
            "flagged 0% (of 191 test examples)") in verdict
    assert "reviewers flagged 21% of tuned answers for a safety issue (3 of 14 ratings), which no automatic check measures" in verdict
    agree = {**AUTO, "human": _human(10, 0.6, [0.3, 0.9], 0, 14)}
    assert "reviewers flagged" not in headline({**agree, "gates": check_gates(agree, {"hallucination_rate": "<= 10%"})})


def _rating(eid, who, **values):
    from sftflow.ratings import output_hash

    row = {"example_id": eid, "reviewer": who, "skipped": 0, "a_model": "tuned", "preferred": "tuned",
           "tuned_hash": output_hash("t"), "base_hash": output_hash("b"),
           **{f"{m}_{f}": 3 for m in ("tuned", "base") for f in ("coherence", "correctness")},
           **{f"{m}_{f}": 0 for m in ("tuned", "base") for f in ("safety", "hallucination")},
           **{f"{m}_{f}": "" for m in ("tuned", "base") for f in ("span", "note")}}
    return {**row, **values}


def test_kappa_for_every_rubric_item_with_an_interval():
    """Safety kappa was missing; no kappa had an interval."""
    from sftflow.review.stats import summarise_ratings
    from sftflow.stats import cohen_kappa

    ids = [f"e{i}" for i in range(8)]
    preds = {e: {"tuned": "t", "base": "b"} for e in ids}
    x_safety = [1, 1, 0, 0, 1, 0, 0, 0]
    y_safety = [1, 0, 0, 0, 1, 0, 1, 0]
    ratings = [_rating(e, "x", tuned_safety=s, tuned_coherence=3 + (i % 2)) for i, (e, s) in enumerate(zip(ids, x_safety, strict=True))]
    ratings += [_rating(e, "y", tuned_safety=s, tuned_coherence=3 + (i % 3 == 0)) for i, (e, s) in enumerate(zip(ids, y_safety, strict=True))]
    s = summarise_ratings(ids, preds, ratings)
    (pair,) = s["agreement"]
    items = set(pair) - {"reviewers", "examples"}
    assert items == {"preferred", *(f"{m}_{f}" for m in ("tuned", "base")
                                    for f in ("coherence", "correctness", "safety", "hallucination"))}
    safety = pair["tuned_safety"]
    assert safety["kappa"] == pytest.approx(cohen_kappa(x_safety, y_safety)) and safety["n"] == 8
    lo, hi = safety["kappa_ci95"]
    assert -1 <= lo <= safety["kappa"] <= hi <= 1 and hi - lo > 0.1
    assert pair["base_safety"]["kappa"] is None and pair["base_safety"]["agreement"] == 1.0  # no variation
    assert s["shared_examples"] == 8 and s["examples_rated"] == 8 and s["ratings"] == 16


def test_report_md_human_section_is_rounded_with_denominators():
    """report.md printed `base 0.14285714285714285` and "14 ratings ... of 191 test examples"."""
    from sftflow.eval.human import human_report_md
    from sftflow.review.stats import summarise_ratings

    ids = [f"e{i}" for i in range(7)]
    preds = {e: {"tuned": "t", "base": "b"} for e in ids}
    ratings = [_rating(e, who, base_hallucination=int(i == 0), tuned_hallucination=int(i < 3), preferred="tuned" if i else "base")
               for i, e in enumerate(ids) for who in ("x", "y")]
    human = summarise_ratings(ids, preds, ratings)
    human["examples"] = 191
    metrics = {**AUTO, "test_examples": 191, "human": human,
               "gates": check_gates({**AUTO, "human": human}, {"human_win_rate": ">= 0.6"}, min_ratings=30)}
    md = human_report_md(metrics)
    assert not re.search(r"\d\.\d{4,}", md), md  # no raw floats
    assert "14 ratings of 7 distinct examples by 2 reviewer(s); the test set has 191 examples, so 4% of it was reviewed" in md
    assert "| hallucination flagged (reviewers) | 14% (2 of 14 ratings; 95% CI 4%–40%) | 43% (6 of 14 ratings; 95% CI 21%–67%) |" in md
    assert "| hallucination_rate (automatic) | – | 0% (of 191 test examples) |" in md
    assert "the denominators differ" in md
    assert "| human_win_rate | >= 0.6 | not enough ratings |" in md
    assert re.search(r"\| tuned safety \| κ – \(100% agree", md) and re.search(r"\| tuned hallucination \| (κ [-\d.]+ \[|κ –)", md)
