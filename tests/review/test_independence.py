"""Issue 32: independent, blind ratings; identity bound to the login; assigned batches;
ratings editable until the batch is submitted; ids with '/' reachable. In-process (TestClient).

Each test here failed on the app before issue 32 (it showed /summary and the exports to every
reviewer, revealed "A was tuned" after a rating, read the name from a cookie, refused a
correction with 409 and routed no id with '/').
"""

import json
import re

import pytest

from sftflow.config.review import ReviewConfig
from tests.review.conftest import ADMIN, TOKEN
from tests.review.session import stored_ratings
from tests.review.test_review import AS_ADMIN, FULL_FORM, _client, _csrf, _ids


def _page_csrf(client, path: str = "/review") -> str:
    return _csrf(client.get(path, follow_redirects=True).text)


def _main(page: str) -> str:
    """The page without its header and help box: what the reviewer reads."""
    return page.split("<main>")[1].split('id="help"')[0]


def test_a_reviewer_sees_no_other_reviewers_ratings_summary_or_exports(run_dir):
    """Defect 1: Bob, before rating anything, could open /summary and read Alice's flag, its
    span and which model it was on, and download ratings.csv."""
    first = _ids(run_dir)[0]
    alice = _client(run_dir, "alice")
    note = "urgency low is invented"
    assert alice.post(f"/review/{first}", data={**FULL_FORM, "a_hallucination": "on", "a_span": '"urgency": "low"',
                                                "a_note": note, "csrf": alice.csrf}).status_code == 303
    bob = _client(run_dir, "bob")
    for path in ("/summary", "/api/summary", "/export/ratings.csv", "/export/ratings.jsonl"):
        r = bob.get(path)
        assert r.status_code == 403 and note not in r.text and "alice" not in r.text, (path, r.status_code)
        assert "for the admin" in r.text
    for path in ("/batch", f"/review/{first}"):
        page = bob.get(path).text
        assert note not in page and "alice" not in page.lower() and "urgency&#34;: &#34;low" not in page
    admin = _client(run_dir, None)
    assert note in admin.get("/summary", headers=AS_ADMIN).text
    assert note in admin.get("/export/ratings.csv", headers=AS_ADMIN).text


def test_which_answer_was_tuned_is_never_shown_while_rating(run_dir):
    """Defect 2: "Stored. Previous example: A was tuned" after every rating. Now nothing says
    it, not the next page, not the JSON answer, not the reviewer's own list, unless the admin
    allows it (review.reveal_after_batch) and the batch is submitted."""
    ids = _ids(run_dir)
    settings = ReviewConfig(batch_size=2, overlap=0)
    client = _client(run_dir, "ann", settings)
    seen = []
    for _ in range(2):
        loc = client.get("/review").headers["location"]
        eid = loc.split("/review/")[1].split("?")[0]
        seen.append(eid)
        r = client.post(f"/review/{eid}", data={**FULL_FORM, "csrf": client.csrf}, headers={"accept": "application/json"})
        assert r.json() == {"stored": True}
        page = client.get(client.get("/review").headers["location"]).text
        for word in ("A was", "tuned", "base", "fine-tuned"):
            assert word not in _main(page), word
    assert set(seen) <= set(ids)
    assert client.post("/batch", data={"csrf": client.csrf}).status_code == 303
    assert "fine-tuned answer was" not in client.get("/batch").text  # submitted, but revealing is off
    shown = _client(run_dir, "bo", ReviewConfig(batch_size=2, overlap=0, reveal_after_batch=True))
    for _ in range(2):
        eid = shown.get("/review").headers["location"].split("/review/")[1]
        assert shown.post(f"/review/{eid}", data={**FULL_FORM, "csrf": shown.csrf}).status_code == 303
    assert "fine-tuned answer was" not in shown.get("/batch").text  # not before the batch is submitted
    assert shown.post("/batch", data={"csrf": shown.csrf}).status_code == 303
    assert "fine-tuned answer was" in shown.get("/batch").text


def test_both_answers_get_the_same_panels(run_dir):
    """Defect 2: a reasoning panel only on the side that reasons gave the tuned model away."""
    path = run_dir / "eval" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["tuned_reasoning"] = "The customer needs a laptop fix."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = _client(run_dir).get(f"/review/{rows[0]['id']}").text
    a, b = page.split('id="side-a"')[1].split('id="side-b"')
    assert 'class="reasoning"' in a and 'class="reasoning"' in b.split("</fieldset>")[0]
    assert "(no reasoning given)" in page and "The customer needs a laptop fix." in page


def test_names_are_case_insensitive_and_reuse_is_said(run_dir):
    """Defect 3: names were case-sensitive with no warning when already in use."""
    from fastapi.testclient import TestClient

    from sftflow.review.app import create_app

    app = create_app(run_dir, TOKEN, admin_token=ADMIN)
    first = TestClient(app, follow_redirects=False)
    assert first.post("/login", data={"token": TOKEN, "name": "Alice"}).status_code == 303
    second = TestClient(app, follow_redirects=False)
    r = second.post("/login", data={"token": TOKEN, "name": "ALICE"})
    assert r.status_code == 409 and "the name &#39;Alice&#39; is already in use" in r.text
    assert "I am Alice: continue my batch" in r.text and "set-cookie" not in r.headers
    r = second.post("/login", data={"token": TOKEN, "name": "alice ", "same_person": "on"})
    assert r.status_code == 303
    eid = _ids(run_dir)[0]
    csrf = _page_csrf(second)
    assert second.post(f"/review/{eid}", data={**FULL_FORM, "csrf": csrf}).status_code == 303
    assert [r["reviewer"] for r in stored_ratings(run_dir)] == ["Alice"]  # one reviewer, as first typed


def _toss(client, name: str, value: str) -> None:
    """What `Set-Cookie: NAME=VALUE; Path=/` from another port does: it replaces the host's cookie."""
    host = next((c.domain for c in client.cookies.jar), "testserver.local")
    for cookie in [c for c in client.cookies.jar if c.name == name]:
        client.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    client.cookies.set(name, value, domain=host, path="/")


def test_a_cookie_set_by_another_page_does_not_change_who_rates(run_dir):
    """Defect 3: a page on another port sent `Set-Cookie: sftflow_reviewer=Mallory; Path=/`,
    and the app then filed ratings under Mallory. The name now lives in the server's session."""
    client = _client(run_dir, "ann")
    _toss(client, "sftflow_reviewer", "Mallory")
    _toss(client, "sftflow_review_token", TOKEN)
    page = client.get("/review", follow_redirects=True).text
    assert 'id="reviewer">ann<' in page and "Mallory" not in page
    eid = _ids(run_dir)[0]
    assert client.post(f"/review/{eid}", data={**FULL_FORM, "csrf": _csrf(page)}).status_code == 303
    assert [r["reviewer"] for r in stored_ratings(run_dir)] == ["ann"]
    stranger = _client(run_dir, None)  # a tossed name alone logs nobody in
    _toss(stranger, "sftflow_reviewer", "Mallory")
    assert stranger.get(f"/review/{eid}").status_code == 401


def test_batches_are_seeded_with_a_planned_overlap():
    """Defect/item 3: each reviewer a sampled batch, all sharing the same overlap set."""
    from sftflow.review.assign import batch, examples_needed, half_width, plan_text, shared_set

    order = [f"e{i}" for i in range(20)]
    settings = ReviewConfig(batch_size=6, overlap=2, seed=7)
    batches = [batch(order, k, settings) for k in range(3)]
    assert batches == [batch(order, k, settings) for k in range(3)]  # deterministic
    assert all(len(b) == 6 and len(set(b)) == 6 for b in batches)
    shared = set(shared_set(order, settings))
    assert len(shared) == 2 and set.intersection(*map(set, batches)) == shared
    own = [set(b) - shared for b in batches]
    assert not (own[0] & own[1]) and not (own[1] & own[2]) and not (own[0] & own[2])  # 18 left: no reuse yet
    assert batch(order, 0, ReviewConfig(batch_size=6, overlap=2, seed=8)) != batches[0]
    assert sorted(batch(order[:5], 0, settings)) == sorted(order[:5])  # a batch larger than the set: all of it
    # the plan's arithmetic, from the normal approximation: 1.96 * sqrt(0.25 / n)
    assert half_width(30) == pytest.approx(0.1789, abs=1e-3) and examples_needed(0.10) == 97
    text = plan_text(order, ReviewConfig(batch_size=6, overlap=2, min_ratings=30))
    assert "Your batch: 6 examples, 2 of them also rated by every other reviewer" in text and "±18 points" in text


def test_progress_and_plan_are_shown_before_rating(run_dir):
    client = _client(run_dir, "ann", ReviewConfig(batch_size=4, overlap=2, min_ratings=30))
    page = client.get("/review", follow_redirects=True).text
    assert re.search(r"Example 1 of 4 in your batch ·\s+0 rated", page)
    assert "Your batch: 4 examples, 2 of them also rated by every other reviewer" in page  # before the first rating
    assert "Your batch: 4 examples, 2 of them also rated by every other reviewer" in client.get("/batch").text


def test_a_rating_can_be_corrected_until_the_batch_is_submitted(run_dir):
    """Defect 5: a second submit of one's own rating was a 409, and "Already rated" showed only
    the preference. Now the form comes back filled in, a correction replaces the rating, and
    only a submitted batch is final."""
    client = _client(run_dir, "ann", ReviewConfig(batch_size=2, overlap=0))
    eid = client.get("/review").headers["location"].split("/review/")[1]
    assert client.post(f"/review/{eid}", data={**FULL_FORM, "a_note": "first try", "csrf": client.csrf}).status_code == 303
    page = client.get(f"/review/{eid}").text
    assert 'name="a_coherence" value="4" required checked' in page and "first try</textarea>" in page
    fixed = {**FULL_FORM, "a_coherence": "2", "preferred": "B", "csrf": client.csrf}
    assert client.post(f"/review/{eid}", data=fixed).status_code == 303
    (row,) = stored_ratings(run_dir)
    a = row["a_model"]
    assert row[f"{a}_coherence"] == 2 and row[f"{a}_note"] == "" and row["preferred"] != a
    r = client.post("/batch", data={"csrf": client.csrf})
    assert r.status_code == 409 and "1 example(s) left" in r.text
    other = client.get("/review").headers["location"].split("/review/")[1]
    assert client.post(f"/review/{other}", data={**FULL_FORM, "action": "skip", "csrf": client.csrf}).status_code == 303
    assert client.post("/batch", data={"csrf": client.csrf}).status_code == 303
    r = client.post(f"/review/{eid}", data={**FULL_FORM, "csrf": client.csrf})
    assert r.status_code == 409 and "final" in r.text
    assert len(stored_ratings(run_dir)) == 2


def test_an_id_with_a_slash_is_reachable(run_dir):
    """Defect 5: an example id containing '/' left the reviewer on a 404."""
    path = run_dir / "eval" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [{**rows[0], "id": "tickets/2024/17"}]
    path.write_text(json.dumps(rows[0]) + "\n")
    client = _client(run_dir, "ann")
    loc = client.get("/review").headers["location"]
    assert loc == "/review/tickets%2F2024%2F17"
    page = client.get(loc)
    assert page.status_code == 200 and 'action="/review/tickets%2F2024%2F17"' in page.text
    assert client.post(loc, data={**FULL_FORM, "csrf": _csrf(page.text)}).status_code == 303
    assert client.post("/review/tickets/2024/17", data={**FULL_FORM, "csrf": _csrf(page.text)}).status_code == 303
    assert [r["example_id"] for r in stored_ratings(run_dir)] == ["tickets/2024/17"]
    assert client.get("/review").headers["location"] == "/batch"
