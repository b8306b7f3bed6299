"""Conflicting labels: one prompt with different answers, found, shown and resolved by data.conflicts."""

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sftflow.config import parse_config
from sftflow.data.decide.conflicts import conflict_groups, resolve
from sftflow.data.prepare import prepare

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ANSWERS = {
    "refund": '{"intent": "refund", "product": "headphones", "urgency": "high"}',
    "repair": '{"intent": "technical_issue", "product": "headphones", "urgency": "medium"}',
    "status": '{"intent": "order_status", "product": "laptop", "urgency": "low"}',
}


def row(prompt: str, answer: str, origin: str = "human") -> dict:
    return {"prompt": prompt, "completion": ANSWERS[answer], "origin": origin}


def filler(n: int) -> list[dict]:
    return [{"prompt": f"question number {i} about the delivery of parcel {i * 7}",
             "completion": f'{{"intent": "order_status", "product": "parcel {i}", "urgency": "low"}}'} for i in range(n)]


ROWS = [
    row("The headphones won't turn on anymore", "repair"),
    row("The headphones won't turn on anymore!", "refund"),  # the same prompt, loosely: a human conflict
    row("Where is my laptop order, it is late", "status"),
    row("Where is my laptop order, it is late", "refund", origin="synthetic"),  # a teacher contradicts a person
    row("My new headphones arrived with a cracked band", "refund"),  # alone: no conflict
]


def run(tmp_path: Path, policy: str) -> tuple[dict, Path]:
    (tmp_path / "raw").mkdir(parents=True)
    (tmp_path / "raw" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS + filler(120)))
    cfg = parse_config({"data": {"sources": [{"path": "raw/a.jsonl"}], "conflicts": policy},
                        "model": {"name_or_path": "no-such-model"}}, root=tmp_path)
    return prepare(cfg, log=lambda m: None), cfg.data_dir


def decisions(data_dir: Path, decision: str) -> list[tuple]:
    db = sqlite3.connect(data_dir / "ledger.sqlite")
    try:
        return db.execute("SELECT e.source_line, d.reason FROM decisions d JOIN examples e ON e.id = d.example_id "
                          "WHERE d.decision = ? ORDER BY e.source_line", (decision,)).fetchall()
    finally:
        db.close()


def test_report_keeps_human_conflicts_and_shows_them_but_a_synthetic_contradiction_is_unused(tmp_path):
    stats, data_dir = run(tmp_path, "report")
    c = stats["conflicts"]
    assert (c["groups"], c["rows"], c["unused"]) == (2, 4, 1)
    assert [line for line, _ in decisions(data_dir, "conflict")] == [1, 2, 3, 4]
    assert decisions(data_dir, "unused") == [(4, "conflicting labels: synthetic answer contradicts a human one for "
                                                 "this prompt")]
    groups = {g["prompt"].rstrip("!"): sorted((m["origin"], m["fate"], m["answer"]) for m in g["members"])
              for g in c["shown"]}
    assert groups == {
        "The headphones won't turn on anymore": [("human", "kept", ANSWERS["refund"]), ("human", "kept", ANSWERS["repair"])],
        "Where is my laptop order, it is late": [("human", "kept", ANSWERS["status"]),
                                                 ("synthetic", "unused", ANSWERS["refund"])],
    }
    card = (data_dir / "data_card.md").read_text()
    assert "## Conflicting labels" in card and "2 prompts (or near-duplicate prompts) have different answers" in card
    assert "### " not in card and card.count(ANSWERS["repair"].replace("|", "\\|")) == 1


def test_best_keeps_one_answer_per_prompt_and_drop_keeps_none(tmp_path):
    stats, data_dir = run(tmp_path / "best", "best")
    unused = decisions(data_dir, "unused")
    assert [line for line, _ in unused] == [2, 4]  # same score: the first seen human answer wins
    assert stats["conflicts"]["unused"] == 2
    stats, data_dir = run(tmp_path / "drop", "drop")
    assert [line for line, _ in decisions(data_dir, "unused")] == [1, 2, 3, 4]
    assert stats["kept"] == stats["rows_read"] - 4 - stats["duplicates"] - stats["filtered"]


def test_kept_rows_record_their_score_in_the_ledger(tmp_path):
    _, data_dir = run(tmp_path, "report")
    kept = decisions(data_dir, "kept")
    db = sqlite3.connect(data_dir / "ledger.sqlite")
    details = [d for (d,) in db.execute("SELECT detail FROM decisions WHERE decision = 'kept'")]
    db.close()
    assert len(details) == len(kept) and all(d.startswith("score ") for d in details)


def test_conflict_groups_by_hand():
    # positions 0-1 share a prompt with different answers; 2-3 share one with the same answer;
    # 4-5 are near-duplicate prompts that disagree; 6 is not a member (e.g. a duplicate)
    same_prompt = np.array([[0, 1], [2, 3], [1, 6]])
    near = np.array([[4, 5], [3, 6]])
    answers = np.array([10, 11, 12, 12, 13, 14, 15], dtype=np.uint64)
    members = np.array([True, True, True, True, True, True, False])
    groups = conflict_groups(7, same_prompt, near, answers, members)
    assert groups[0] == groups[1] and groups[4] == groups[5] and groups[0] != groups[4]
    assert (groups[[2, 3, 6]] == -1).all()
    synthetic = np.array([False, True, False, False, False, False, False])
    scores = np.array([0.9, 1.0, 1, 1, 0.5, 0.8, 1])
    assert resolve(groups, answers, synthetic, scores, "report") == {
        1: "conflicting labels: synthetic answer contradicts a human one for this prompt"}
    assert sorted(resolve(groups, answers, synthetic, scores, "best")) == [1, 4]  # human 0 over synthetic 1; 5 > 4
    assert sorted(resolve(groups, answers, synthetic, scores, "drop")) == [0, 1, 4, 5]
