import json
import random
import sqlite3

import pytest

from sftflow.config import parse_config
from sftflow.data.decide.split import split_of
from sftflow.data.prepare import prepare
from sftflow.errors import SftflowError

SYSTEM = "Classify."


def chat(i, answer=None):
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"question number {i}"},
                         {"role": "assistant", "content": answer or f"answer {i}"}]}


def make_project(tmp_path, rows_a, rows_b=None, **data):
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "a.jsonl").write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows_a))
    sources = [{"path": "raw/a.jsonl"}]
    if rows_b is not None:
        (raw / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_b))
        sources.append({"path": "raw/b.jsonl"})
    cfg = parse_config({"data": {"sources": sources, **data}, "model": {"name_or_path": "m"}}, root=tmp_path)
    return cfg


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_row_accounted_for_with_rejects_and_duplicates(tmp_path):
    rows = [chat(i) for i in range(50)]
    rows.insert(10, "{not json\n")  # line 11
    rows.insert(20, {"instruction": "x", "output": ""})  # line 21
    rows.append(chat(3))  # exact duplicate of line 4
    alpaca_dup = {"system": SYSTEM, "instruction": "question number 5", "output": "answer 5"}
    cfg = make_project(tmp_path, rows, [alpaca_dup])
    stats = prepare(cfg, log=lambda m: None)
    assert stats["rows_read"] == 54
    assert (stats["kept"], stats["rejected"], stats["duplicates"]) == (50, 2, 2)
    assert sum(stats["splits"].values()) == 50
    rejects = read(cfg.data_dir / "rejects.jsonl")
    assert [(r["file"], r["line"], r["field"]) for r in rejects] == [("raw/a.jsonl", 11, None),
                                                                      ("raw/a.jsonl", 21, "output")]
    assert rejects[0]["reason"].startswith("invalid JSON")
    assert rejects[1]["reason"] == "empty"
    kept = [r for s in ("train", "val", "test") for r in read(cfg.data_dir / f"{s}.jsonl")]
    assert len({r["id"] for r in kept}) == 50
    first = next(r for r in kept if r["messages"][1]["content"] == "question number 0")
    assert first["source"] == {"file": "raw/a.jsonl", "line": 1, "format": "messages", "origin": "human"}
    card = (cfg.data_dir / "data_card.md").read_text()
    assert "Rows read: **54**" in card and "alpaca" in card
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    decisions = dict(db.execute("SELECT decision, count(*) FROM decisions WHERE stage='prepare' GROUP BY decision"))
    assert decisions == {"kept": 50, "rejected": 2, "duplicate": 2}
    dup = db.execute("SELECT reason FROM decisions WHERE decision='duplicate' AND source_file='raw/b.jsonl'").fetchone()
    kept_id = db.execute("SELECT example_id FROM decisions WHERE decision='kept' AND source_line=6").fetchone()[0]
    assert dup == (f"exact duplicate of {kept_id} (raw/a.jsonl:6)",)


def test_split_is_deterministic_and_stable_when_data_grows(tmp_path):
    cfg = make_project(tmp_path, [chat(i) for i in range(400)])
    prepare(cfg, log=lambda m: None)
    before = {s: {r["id"] for r in read(cfg.data_dir / f"{s}.jsonl")} for s in ("train", "val", "test")}
    assert 0.7 < len(before["train"]) / 400 < 0.9 and before["test"] and before["val"]
    prepare(cfg, log=lambda m: None)
    again = {s: {r["id"] for r in read(cfg.data_dir / f"{s}.jsonl")} for s in ("train", "val", "test")}
    assert again == before
    cfg = make_project(tmp_path, [chat(i) for i in range(800)])
    prepare(cfg, log=lambda m: None)
    grown = {s: {r["id"] for r in read(cfg.data_dir / f"{s}.jsonl")} for s in ("train", "val", "test")}
    for s in before:
        assert before[s] <= grown[s]  # no existing example moved
    other_seed = make_project(tmp_path, [chat(i) for i in range(400)], seed=7)
    prepare(other_seed, log=lambda m: None)
    assert {r["id"] for r in read(cfg.data_dir / "test.jsonl")} & before["test"] != before["test"]


def test_same_prompt_different_answers_stay_in_one_split(tmp_path):
    rows = [chat(i % 40, answer=f"variant {i}") for i in range(200)]
    cfg = make_project(tmp_path, rows)
    prepare(cfg, log=lambda m: None)
    where = {}
    for s in ("train", "val", "test"):
        for r in read(cfg.data_dir / f"{s}.jsonl"):
            where.setdefault(r["messages"][1]["content"], set()).add(s)
    assert all(len(v) == 1 for v in where.values())


def test_group_field_and_prompt_both_keep_rows_together(tmp_path):
    # customer c{i%7} owns rows with different prompts; prompt 0 is asked by several customers:
    # groups chain through both, so no customer and no prompt straddles splits.
    rows = [{**chat(i % 30, answer=f"a{i}"), "customer": f"c{i % 7}"} for i in range(60)]
    rows += [{**chat(1000 + i), "customer": f"solo{i}"} for i in range(300)]
    cfg = make_project(tmp_path, rows, group_field="customer")
    prepare(cfg, log=lambda m: None)
    by_customer, by_prompt = {}, {}
    for s in ("train", "val", "test"):
        for r in read(cfg.data_dir / f"{s}.jsonl"):
            by_customer.setdefault(r["group"], set()).add(s)
            by_prompt.setdefault(r["messages"][1]["content"], set()).add(s)
    assert all(len(v) == 1 for v in by_customer.values()) and all(len(v) == 1 for v in by_prompt.values())
    assert len({next(iter(by_customer[f"c{k}"])) for k in range(7)}) == 1  # chained into one group
    assert len({next(iter(v)) for v in by_customer.values()}) == 3


def test_no_usable_rows_keeps_every_reason(tmp_path):
    """A file whose rows are all broken: one error line, every reason in rejects.jsonl and in the
    log by count, so the user fixes them all in one pass."""
    cfg = make_project(tmp_path, ["nope\n", "{}\n", "nope again\n", '{"text": 1}\n'])
    logged = []
    with pytest.raises(SftflowError, match=r"no usable examples in data.sources \(4 rows read, 4 rejected, 0 filtered\); every "
                                           r"reason is in .*rejects\.jsonl$"):
        prepare(cfg, log=logged.append)
    rejects = [json.loads(x) for x in (cfg.data_dir / "rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [1, 2, 3, 4]
    assert "  rejected      2: invalid JSON: Expecting value" in logged
    assert not (cfg.data_dir / "train.jsonl").exists()


def test_split_of_respects_fractions():
    fr = {"train": 0.8, "val": 0.1, "test": 0.1}
    counts = {"train": 0, "val": 0, "test": 0}
    for i in range(5000):
        counts[split_of(str(i), 42, fr)] += 1
    assert abs(counts["train"] / 5000 - 0.8) < 0.02 and abs(counts["test"] / 5000 - 0.1) < 0.02
    assert split_of("x", 1, {"train": 1.0, "val": 0.0, "test": 0.0}) == "train"


def test_vectorised_split_cuts_match_the_scalar_rule():
    import numpy as np

    from sftflow.data.decide.split import _cut, _cuts

    rng = np.random.default_rng(0)
    for fractions in ({"train": 0.8, "val": 0.1, "test": 0.1}, {"train": 0.85, "val": 0.15, "test": 0.0},
                      {"train": 0.0, "val": 0.5, "test": 0.5}, {"train": 0.7, "val": 0.0, "test": 0.2}):
        edges = np.cumsum(list(fractions.values()))
        u = np.concatenate([rng.random(2000), edges, np.nextafter(edges, 0), [0.0, 0.9999999]])
        assert _cuts(u, fractions).tolist() == [_cut(x, fractions) for x in u]


def test_ngram_matches_are_every_shared_gram_with_every_owner():
    import numpy as np

    from sftflow.data.decide.split import NgramIndex, ngram_hashes

    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    owned = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 30))) for _ in range(60)]
    probes = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 30))) for _ in range(60)]
    probes += owned[:5]  # certain hits
    grams = [(j, h) for j, t in enumerate(probes) for h in ngram_hashes(t, 3)]
    rows, owners = NgramIndex(owned, n=3).matches(np.array([h for _, h in grams]), np.array([j for j, _ in grams]))
    expected = [(j, i) for j, h in grams for i, t in enumerate(owned) for g in ngram_hashes(t, 3) if g == h]
    assert len(expected) > 20 and sorted(zip(rows.tolist(), owners.tolist(), strict=True)) == sorted(expected)
