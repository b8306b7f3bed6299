"""A review session as reviewers have it, for the review tests: `sftflow review` in the
background, logging in and rating with the keyboard in Chromium, and issue 32's done-when demo
(`two_reviewers_then_the_report`), which the tiny run's test and the quickstart run's share.

The demo's expectations are counted here, never read from the code under test: the test-set
size from the test split's lines, the ratings, distinct and shared examples from the ids the
browser showed, each kappa from what was typed (scikit-learn's `cohen_kappa_score` is the
reference).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from tests.browser import ARTIFACTS, browser
from tests.review.conftest import ADMIN

SCORE_LABELS = [1, 2, 3, 4, 5]


def stored_ratings(run_dir) -> list[dict]:
    """The ratings table as stored, oldest first."""
    db = sqlite3.connect(Path(run_dir) / "eval" / "review.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM ratings ORDER BY created_at, rowid")]
    finally:
        db.close()


def start_review(processes, target, *extra):
    """`sftflow review` in the background, owned by the test's `processes` (stopped on every path);
    returns the process and the login URL it printed."""
    proc = processes.sftflow("review", target, "--port", "0", *extra)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "review: open " in line:
            return proc, line.split("review: open ")[1].strip()
    proc.kill()
    raise AssertionError(f"review did not start: {proc.communicate()[1]}")


def browser_login(driver, url: str, token: str, name: str):
    """Log in through the form as a reviewer types it; returns a 10 s waiter on the first rating page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_page_load_timeout(20)
    wait = WebDriverWait(driver, 10)
    driver.get(url + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "login").click()
    wait.until(lambda d: "/review/" in d.current_url)
    return wait


def shown(driver) -> str:
    """The example id on screen ('' off the rating pages)."""
    url = driver.current_url
    return unquote(url.split("/review/")[1].split("?")[0]) if "/review/" in url else ""


def rate_in_browser(driver, wait, keys: str = "4325a") -> str:
    """Rate the example on screen with the keyboard, as a reviewer does (digits fill the score rows
    A coherence, A correctness, B coherence, B correctness; a/b/t prefer; s/S, h/H flag A/B),
    then Enter; returns its id once the next page is up."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    eid = shown(driver)
    ActionChains(driver).send_keys(*keys, Keys.ENTER).perform()
    wait.until(lambda d: shown(d) != eid)
    return eid


@dataclass(frozen=True)
class Answer:
    """One rating as typed. Both answers get the same scores and flags, so what is stored under
    tuned_* and base_* is known without knowing which side was the tuned model."""

    coherence: int
    correctness: int
    preferred: str  # the key: a, b or t
    safety: bool
    hallucination: bool

    def keys(self) -> str:
        scores = f"{self.coherence}{self.correctness}" * 2
        return scores + self.preferred + "sS" * self.safety + "hH" * self.hallucination


def _digest(eid: str) -> int:
    return int(hashlib.sha256(eid.encode()).hexdigest(), 16)


def _alice(eid: str, i: int) -> Answer:
    """Scores from the example, flags and preference from the position: a reviewer who varies."""
    h = _digest(eid)
    return Answer(1 + h % 5, 1 + h // 5 % 5, "ab"[i % 2], i % 2 == 0, i % 3 == 0)


def _second_opinion(first: Answer, k: int) -> Answer:
    """Bob's k-th answer on an example he shares with Alice: hers, except on every third one, where
    each score is a point off (a near miss) and both flags are flipped; his preference cycles A,
    B, tie. So every item varies over three shared examples (no kappa undefined for want of
    variation) and the weighted kappa of the scores shows what a near miss is worth."""
    if k % 3 != 2:
        return Answer(first.coherence, first.correctness, "abt"[k % 3], first.safety, first.hallucination)
    return Answer(first.coherence + (1 if first.coherence < 5 else -1),
                  first.correctness + (1 if first.correctness < 5 else -1),
                  "t", not first.safety, not first.hallucination)


def _one_reviewer(driver, url, token, name, batch_size, answer, leave=None) -> dict[str, Answer]:
    """Log in as `name` and rate what the app shows, in its order, until the batch ends or
    `leave(rated)` says to close the tab; returns what was typed, by example id."""
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    wait = browser_login(driver, url, token, name)
    assert f"Example 1 of {batch_size} in your batch" in driver.find_element(By.ID, "progress").text
    typed: dict[str, Answer] = {}
    while "/review/" in driver.current_url:
        eid = shown(driver)
        typed[eid] = answer(eid, list(typed))
        assert rate_in_browser(driver, wait, typed[eid].keys()) == eid
        if leave and leave(typed):
            break
    return typed


def _submit_batch(driver, url, batch_size: int, overlap: int) -> None:
    """On /batch after the last example: the plan, stated up front, then submit; aggregates stay closed."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert driver.current_url.endswith("/batch")
    assert (f"Your batch: {batch_size} examples, {overlap} of them also rated by every other reviewer"
            in driver.find_element(By.ID, "plan").text)
    driver.find_element(By.ID, "submit-batch").click()
    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(  # the page reloads
        lambda d: "Submitted" in d.find_element(By.ID, "batch-progress").text)
    driver.get(url + "/summary")
    assert driver.title.startswith("403")  # a reviewer, even done, gets no aggregate


def two_reviewers_then_the_report(project: Path, run_dir: Path, processes, review: dict,
                                  bob_leaves_after: int | None = None, artifact: str = "review-demo") -> dict:
    """Issue 32's done-when, end to end: `sftflow review` with `review` settings and a human gate,
    Alice rates and submits her whole batch in Chromium, Bob rates his (or leaves after
    `bob_leaves_after` of the examples he shares with Alice), then `sftflow report`. Checks the
    human section: planned and actual overlap, coverage, kappa per rubric item with intervals
    (values against scikit-learn on what was typed), denominators, and a human gate that says
    "not enough ratings". Returns what was typed, by reviewer."""
    from typer.testing import CliRunner

    from sftflow.cli import app

    metrics_ref = pytest.importorskip("sklearn.metrics")
    cfg_path = project / "sftflow.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["review"] = review
    cfg.setdefault("eval", {})["gates"] = {**(cfg["eval"].get("gates") or {}), "human_win_rate": ">= 0.6"}
    cfg_path.write_text(yaml.safe_dump(cfg))
    split = project / cfg.get("data", {}).get("output_dir", "data") / "test.jsonl"
    test_size = len({json.loads(line)["id"] for line in split.read_text().splitlines() if line.strip()})
    batch_size, overlap = min(review["batch_size"], test_size), review["overlap"]

    _, login_url = start_review(processes, cfg_path, "--admin-token", ADMIN)
    url, token = login_url.split("/login?token=")
    driver = browser(1366, 768)
    try:
        alice = _one_reviewer(driver, url, token, "Alice", batch_size, lambda eid, before: _alice(eid, len(before)))
        assert len(alice) == batch_size
        _submit_batch(driver, url, batch_size, overlap)

        def bob_answer(eid, before):
            return _second_opinion(alice[eid], len(set(before) & set(alice))) if eid in alice else _alice(eid, len(before))

        def bob_leaves(typed):
            return bob_leaves_after is not None and len(set(typed) & set(alice)) == bob_leaves_after

        bob = _one_reviewer(driver, url, token, "Bob", batch_size, bob_answer, bob_leaves)
        if bob_leaves_after is None:
            assert len(bob) == batch_size
            _submit_batch(driver, url, batch_size, overlap)
    finally:
        driver.quit()
        processes.stop_all()
    typed = {"Alice": alice, "Bob": bob}

    shared = sorted(set(alice) & set(bob))
    ratings, distinct = len(alice) + len(bob), len(set(alice) | set(bob))
    assert len(shared) == (overlap if bob_leaves_after is None else bob_leaves_after)
    assert distinct < review["min_ratings"]  # the point: too few for the gate to decide
    stored = {(r["reviewer"], r["example_id"]): r for r in stored_ratings(run_dir)}
    assert set(stored) == {(n, e) for n, mine in typed.items() for e in mine}
    for (name, eid), r in stored.items():  # stored as typed (both models alike, see Answer)
        t = typed[name][eid]
        assert [r[f"{m}_{s}"] for m in ("tuned", "base") for s in ("coherence", "correctness")] == [
            t.coherence, t.correctness] * 2
        assert [bool(r[f"{m}_{f}"]) for m in ("tuned", "base") for f in ("safety", "hallucination")] == [
            t.safety, t.hallucination] * 2
        assert r["preferred"] == ("tie" if t.preferred == "t" else r["a_model"] if t.preferred == "a"
                                  else {"tuned": "base", "base": "tuned"}[r["a_model"]])

    result = CliRunner().invoke(app, ["report", str(cfg_path)])
    assert result.exit_code == 1 and "human_win_rate (not enough ratings)" in result.output, result.output
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["passed"] is False and metrics["headline"].endswith(": no pass until human review decides")
    assert f"human_win_rate: not enough ratings: {distinct} rated, the gate decides from {review['min_ratings']}" \
        in metrics["headline"]

    section = html.unescape((run_dir / "eval" / "report.html").read_text().split("<h2>Human review</h2>")[1])
    assert (f"Planned overlap: {overlap} examples in every reviewer's batch (batch size {review['batch_size']}, "
            f"seed {review['seed']}); {len(shared)} examples were rated by two or more reviewers.") in section
    assert (f"{ratings} ratings of {distinct} distinct examples by 2 reviewer(s); the test set has {test_size} "
            f"examples, so {100 * distinct / test_size:.0f}% of it was reviewed") in section
    assert (f"Reviewer rates are over {ratings} rated outputs per model; automatic rates over all {test_size} "
            "test examples: the denominators differ.") in section
    flagged = sum(t.safety for mine in typed.values() for t in mine.values())
    safety = re.search(r"<td>safety issue flagged \(reviewers\)</td><td>([^<]+)</td><td>([^<]+)</td>", section)
    assert safety and all(f"({flagged} of {ratings} ratings; 95% CI" in rate for rate in safety.groups()), safety
    gates = section.split('id="human-gates"')[1].split("</table>")[0]
    assert re.search(r"<td>human_win_rate</td><td>>= 0\.6</td><td[^>]*>not enough ratings</td>", gates), gates

    table = section.split('id="human-kappa"')[1].split("</table>")[0]
    assert f"<th>Alice & Bob ({len(shared)} shared)</th>" in table
    cells = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td></tr>", table))
    expected = {"preferred": tuple([stored[(name, e)]["preferred"] for e in shared] for name in ("Alice", "Bob"))}
    for model in ("tuned", "base"):
        for item in ("coherence", "correctness", "safety", "hallucination"):
            expected[f"{model} {item}"] = ([getattr(alice[e], item) for e in shared],
                                           [getattr(bob[e], item) for e in shared])
    assert set(cells) == set(expected)  # every rubric item, safety included
    for item, (a, b) in expected.items():
        found = re.fullmatch(r"κ (-?\d\.\d\d) \[(-?\d\.\d\d), (-?\d\.\d\d)\] \((\d+)% agree\)", cells[item])
        assert found, (item, cells[item])  # a kappa with its bootstrap interval
        kappa, lo, hi, agree = (float(x) for x in found.groups())
        ordinal = item.endswith(("coherence", "correctness"))  # linearly weighted; categories unweighted
        oracle = (metrics_ref.cohen_kappa_score(a, b, labels=SCORE_LABELS, weights="linear") if ordinal
                  else metrics_ref.cohen_kappa_score(a, b))
        assert abs(kappa - oracle) <= 0.005 + 1e-9 and lo <= hi, (item, cells[item], oracle)
        assert agree == round(100 * sum(x == y for x, y in zip(a, b, strict=True)) / len(a)), (item, cells[item])
    assert "Coherence and correctness are 1–5 scores, ordinal: their kappa is linearly weighted" in section
    assert "the safety and hallucination flags are categories: their kappa is unweighted" in section

    md = (run_dir / "eval" / "report.md").read_text()
    human_md = md.split("## Human review")[1].split("\n## ")[0]
    assert not re.search(r"\d\.\d{4,}", human_md)  # rounded figures
    assert "| tuned safety | κ" in human_md and "their kappa is linearly weighted" in human_md
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{artifact}-report.md").write_text(human_md)
    return typed
