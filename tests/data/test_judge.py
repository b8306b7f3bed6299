"""`data.quality.judge` through `prepare`, against a scripted OpenAI-compatible stub on 127.0.0.1:
verdict parsing, the combined score and filter, reasons in records and ledger, the content-hash
cache, malformed and failed verdicts, and agreement with human review ratings."""

import json
import random
import sqlite3

import pytest

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.data.signals.judge import parse_verdict
from tests.fake_openai import FakeOpenAI

WORDS = [f"w{i}" for i in range(3000)]
quiet = dict(log=lambda m: None)


def pair(prompt, answer):
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


def rows(n=60, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = "question " + " ".join(rng.choice(WORDS) for _ in range(20))
        answer = "the answer is " + " ".join(rng.choice(WORDS) for _ in range(8))
        out.append(pair(prompt, answer + (" WRONG." if i % 10 == 0 else " meh." if i % 10 == 1 else ".")))
    return out


def project(tmp_path, url, data_rows, **judge):
    raw = tmp_path / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data_rows))
    j = {"base_url": url, "model": "teacher-1", "api_key_env": None, "backoff": 0.01, "concurrency": 2, **judge}
    return parse_config({"name": "run", "data": {"sources": [{"path": "raw/a.jsonl"}], "quality": {"judge": j}},
                         "model": {"name_or_path": "m"}}, root=tmp_path)


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def kept(cfg):
    return [r for s in ("train", "val", "test") for r in read(cfg.data_dir / f"{s}.jsonl")]


@pytest.fixture
def fake():
    with FakeOpenAI() as f:
        yield f


def test_verdict_parsing():
    ok = parse_verdict('Here: ```json\n{"correctness": 4, "helpfulness": "5", "format": 3.0, "reasons": "fine"}\n```')
    assert ok.scores == {"correctness": 4, "helpfulness": 5, "format": 3} and ok.reasons == "fine"
    assert ok.mean == 4
    assert parse_verdict("no json at all").error == "malformed: no JSON object in the judge's reply"
    assert "'format' must be an integer 1-5, got 7" in parse_verdict('{"correctness": 1, "helpfulness": 1, "format": 7}').error
    assert "'helpfulness'" in parse_verdict('{"correctness": 1, "format": 2}').error
    assert parse_verdict('{"correctness": true, "helpfulness": 1, "format": 1}').scores is None


def test_judge_scores_filters_and_records_reasons_with_a_cache(tmp_path, fake):
    data = rows()
    data.append(pair("Tell me", "As an AI language model, I cannot help with that."))  # the rules filter it
    cfg = project(tmp_path, fake.url, data)
    stats = prepare(cfg, **quiet)
    j = stats["judge"]
    assert len(fake.requests) == 60  # the rule-filtered row was not sent
    assert (j["scored"], j["filtered"], j["malformed"], j["cached"]) == (60, 6, 0, 0)
    assert stats["filtered"] == 7 and stats["kept"] == 54
    assert j["means"]["correctness"] == pytest.approx((6 * 1 + 6 * 4 + 48 * 5) / 60, abs=1e-3)
    meh = next(r for r in kept(cfg) if r["messages"][-1]["content"].endswith("meh."))
    q = meh["quality"]
    assert q["rule_score"] == 1.0 and q["score"] == pytest.approx(0.25 + 0.75 * (13 / 3 - 1) / 4, abs=1e-3)
    assert q["judge"]["correctness"] == 4 and q["judge"]["reasons"].startswith("graded 4")
    assert q["judge"]["model"] == "teacher-1" and q["judge"]["rubric"].startswith("rubric@")
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    reasons = db.execute("SELECT reason FROM decisions WHERE decision = 'filtered'").fetchall()
    assert sorted(r[0] for r in reasons)[0] == "quality 0.25 < 0.5: judge_low"
    scored = db.execute("SELECT reason, detail FROM decisions WHERE stage = 'judge' AND example_id = ?",
                        (meh["id"],)).fetchone()
    assert scored[0].startswith("graded 4") and json.loads(scored[1])["mean"] == pytest.approx(13 / 3, abs=1e-3)
    card = (cfg.data_dir / "data_card.md").read_text()
    assert "LLM judge `teacher-1`" in card and "6 filtered by the combined score" in card

    again = prepare(cfg, **quiet)  # every verdict from the cache: nothing sent
    assert len(fake.requests) == 60 and again["judge"]["cached"] == 60 and again["kept"] == 54
    data[5] = pair(data[5]["messages"][0]["content"], "a changed answer WRONG.")
    (tmp_path / "raw" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    changed = prepare(cfg, **quiet)
    assert len(fake.requests) == 61 and changed["judge"]["filtered"] == 7


def test_malformed_and_failed_verdicts_keep_the_rule_score(tmp_path, fake):
    cfg = project(tmp_path, fake.url, rows(10), concurrency=1, retries=0)
    fake.script = [("text", "I think it is fine"), 500, 500]
    stats = prepare(cfg, **quiet)
    j = stats["judge"]
    assert (j["scored"], j["malformed"], j["failed"]) == (7, 1, 2)
    assert any("examples not judged" in w and "HTTP 500" in w for w in stats["warnings"])
    assert stats["kept"] == 10  # the WRONG row got the malformed verdict: it keeps its rule score, as unjudged rows do
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    not_scored = [r[0] for r in db.execute("SELECT reason FROM decisions WHERE decision = 'not scored'")]
    assert sorted(not_scored)[0].startswith("malformed: no JSON object")
    assert sum(r.startswith("not judged: gave up after 1 attempts: HTTP 500") for r in not_scored) == 2
    again = prepare(cfg, **quiet)  # the malformed verdict is cached, the failed ones are asked again
    assert len(fake.requests) == 12 and again["judge"]["failed"] == 0 and again["judge"]["scored"] == 9


def test_agreement_with_human_review_ratings(tmp_path, fake):
    from sftflow.review.store import ReviewStore

    cfg = project(tmp_path, fake.url, rows(20))
    eval_dir = cfg.run_dir / "eval"
    eval_dir.mkdir(parents=True)
    preds = []
    for i, (tuned, base) in enumerate([("good one.", "all WRONG."), ("meh.", "fine."), ("fine.", "meh.")]):
        preds.append({"id": f"ex{i}", "prompt": [{"role": "user", "content": f"q{i}"}], "reference": "r",
                      "tuned": tuned, "base": base})
    (eval_dir / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    store = ReviewStore(eval_dir / "review.sqlite")
    human = {"good one.": 5, "all WRONG.": 2, "meh.": 3, "fine.": 5}  # judge: 5, 1, 4, 5
    for reviewer in ("ann", "bob"):
        for p in preds:
            store.add({"example_id": p["id"], "reviewer": reviewer, "skipped": 0, "a_model": "tuned",
                       "preferred": "tie", "tuned_correctness": human[p["tuned"]],
                       "base_correctness": human[p["base"]]}, tuned=p["tuned"], base=p["base"])
    stats = prepare(cfg, **quiet)
    a = stats["judge"]["agreement"]
    assert (a["ratings"], a["pairs"]) == (12, 12)
    assert a["exact"] == pytest.approx(6 / 12) and a["within_one"] == pytest.approx(1.0)
    assert a["human_mean"] == pytest.approx(23 / 6) and a["judge_mean"] == pytest.approx(24 / 6)
    assert a["kappa"] is not None
    card = (cfg.data_dir / "data_card.md").read_text()
    assert "Agreement with human review (correctness, 12 rated outputs): exact 50%, within one point 100%" in card


def test_the_judge_is_a_filter_step_over_a_chunk_counted_like_any_other(tmp_path, fake):
    """Built from data.quality alone; it sees only the task rows the rules kept, drops with a low_quality
    Drop, and the Filter base class counts what it saw, kept and dropped."""
    from sftflow.data.signals.judge import Judge
    from sftflow.data.signals.rows import Row
    from sftflow.data.step import Drop, Filter

    cfg = project(tmp_path, fake.url, rows(3))
    judge = Judge.of(cfg.data.quality, cfg.root, cfg.data_dir, cfg.run_dir)
    assert isinstance(judge, Filter) and judge.threshold == 0.5
    records = [dict(pair(f"question {i}", a), quality={"score": 1.0, "reasons": []})
               for i, a in enumerate(["the answer is WRONG.", "the answer is right.", "the answer is fine."])]
    wrong, right, ruled_out = (Row(i + 1, record=r) for i, r in enumerate(records))
    ruled_out.drop = Drop("contaminated", "contaminated: in a benchmark")
    rejected = Row(4, reject=(None, "invalid JSON"))
    try:
        judge.filter([wrong, right, ruled_out, rejected])
    finally:
        judge.close()
    assert len(fake.requests) == 2  # neither the rule-dropped nor the rejected row was sent
    assert wrong.drop.code == "low_quality" and "judge_low" in wrong.drop.counted_as
    assert right.drop is None and ruled_out.drop.code == "contaminated"
    assert (judge.counts["seen"], judge.counts["kept"], judge.counts["dropped"]) == (2, 1, 1)
    assert judge.stats()["filtered"] == 1
