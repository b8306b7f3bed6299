"""The step API of prepare (data/step.py) and the names of the fates (decide/fate.py).

A new filter is one class and its test: `ShortAnswer` below is such a class. Listed in
decide/filters.py's FILTERS (here by monkeypatch), prepare runs it on every record, and its
code reaches stats.json, the data card and the ledger without any other change.
"""

import json
import sqlite3

import numpy as np
import pytest

from sftflow.data.account.census import Lowest
from sftflow.data.columns import Codes
from sftflow.data.decide import filters
from sftflow.data.decide.fate import RECORD_FATES, Fate
from sftflow.data.prepare import prepare
from sftflow.data.read import RawRow
from sftflow.data.signals.rows import Row, RowProcessor, RowSettings, SourceSpec
from sftflow.data.step import Drop, Filter
from tests.data.test_prepare import chat, make_project, read


class ShortAnswer(Filter):
    """A test step: drops a record whose final answer is shorter than `min_chars`."""

    code = "short_answer"

    def __init__(self, min_chars: int):
        super().__init__()
        self.min_chars = min_chars

    @classmethod
    def of(cls, s: RowSettings) -> "ShortAnswer | None":
        return cls(12) if s.quality else None

    def check(self, row: Row) -> Drop | None:
        answer = row.record["messages"][-1]["content"]
        if len(answer) < self.min_chars:
            return Drop(self.code, f"answer of {len(answer)} characters (< {self.min_chars})")
        return None


def _rows(*answers: str) -> list[Row]:
    return [Row(i + 1, record=chat(i, a)) for i, a in enumerate(answers)]


def test_a_filter_says_why_and_the_base_class_counts_seen_kept_and_dropped():
    f = ShortAnswer(12)
    assert f.name == "short_answer"
    long_row, short_row = _rows("a long enough answer", "short")
    assert f(long_row) is None
    assert f(short_row) == Drop("short_answer", "answer of 5 characters (< 12)")
    assert f.counts == {"seen": 2, "kept": 1, "dropped": 1}


def test_filter_over_a_chunk_skips_rejected_and_already_dropped_rows():
    f = ShortAnswer(12)
    rejected, earlier, short, fine = _rows("x", "y", "z", "a long enough answer")
    rejected.reject = (None, "invalid JSON")
    earlier.drop = Drop("contaminated", "contaminated: in a benchmark")
    f.filter([rejected, earlier, short, fine])
    assert rejected.drop is None and earlier.drop.code == "contaminated"  # not seen, not overwritten
    assert short.drop.code == "short_answer" and fine.drop is None
    assert f.counts == {"seen": 2, "kept": 1, "dropped": 1}


def test_a_filter_takes_its_own_settings_and_the_settings_switch_it_on():
    assert ShortAnswer.of(RowSettings(quality=False)) is None
    built = ShortAnswer.of(RowSettings())
    assert isinstance(built, ShortAnswer) and built.min_chars == 12


def test_a_filter_listed_in_FILTERS_runs_in_the_row_processor_after_the_rules(monkeypatch):
    monkeypatch.setattr(filters, "FILTERS", (*filters.FILTERS, ShortAnswer))
    p = RowProcessor(RowSettings())
    raws = [RawRow("t.jsonl", 1, chat(1, "ok")),
            RawRow("t.jsonl", 2, chat(2, "Open Settings, choose Security, then Reset password."))]
    chunk = p.process(raws, SourceSpec("t.jsonl"))
    assert [r.drop.code if r.drop else None for r in chunk.rows] == ["short_answer", None]
    assert chunk.filter_counts["short_answer"] == {"seen": 2, "kept": 1, "dropped": 1}


def test_a_new_filter_reaches_stats_card_and_ledger_through_prepare(tmp_path, monkeypatch):
    monkeypatch.setattr(filters, "FILTERS", (*filters.FILTERS, ShortAnswer))
    rows = [chat(i, f"the answer to question {i} is {i}") for i in range(60)] + [chat(100 + i, f"n{i}") for i in range(4)]
    cfg = make_project(tmp_path, rows)
    stats = prepare(cfg, log=lambda m: None)
    assert stats["filtered"] == 4 and stats["filter_reasons"] == {"short_answer": 4}
    assert "short_answer" in (cfg.data_dir / "data_card.md").read_text()
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    reasons = [r for (r,) in db.execute("SELECT reason FROM decisions WHERE decision = 'filtered'")]
    assert reasons == ["answer of 2 characters (< 12)"] * 4
    kept = [r for s in ("train", "val", "test") for r in read(cfg.data_dir / f"{s}.jsonl")]
    assert len(kept) == 60


def test_fates_are_named_once_for_the_ledger_the_card_and_stats():
    assert [f.word for f in Fate] == ["kept", "duplicate", "filtered", "unused", "rejected"]
    assert [f.counted_as for f in Fate] == ["kept", "duplicates", "filtered", "unused", "rejected"]
    # the codes of a record's state in the arrays decide/ and pass 2 share; a rejected row is never a record
    assert [int(f) for f in RECORD_FATES] == [0, 1, 2, 3] and Fate.REJECTED not in RECORD_FATES
    assert Fate(np.int8(1)) is Fate.DUPLICATE


def test_every_ledger_fate_and_stats_total_is_a_fate(tmp_path):
    rows = [chat(i) for i in range(40)] + ["{not json\n", chat(3)]
    cfg = make_project(tmp_path, rows, quality={"threshold": 0.99})
    stats = prepare(cfg, log=lambda m: None)
    db = sqlite3.connect(cfg.data_dir / "ledger.sqlite")
    words = {w for (w,) in db.execute("SELECT DISTINCT decision FROM decisions WHERE stage = 'prepare'")}
    assert words <= {"kept", "duplicate", "filtered", "unused", "rejected"} and {"kept", "rejected", "duplicate"} <= words
    totals = {k: stats[k] for k in ("kept", "rejected", "duplicates", "filtered", "unused")}
    assert sum(totals.values()) == stats["rows_read"] == 42
    per_file = json.loads((cfg.data_dir / "stats.json").read_text())["files"]["raw/a.jsonl"]
    assert {k: per_file.get(k, 0) for k in totals} == totals


def test_codes_number_values_in_order_of_first_appearance():
    codes = Codes(None)
    drop = Drop("x", "why")
    assert [codes(v) for v in (drop, "a", drop, None, "b", "a")] == [1, 2, 1, 0, 3, 2]
    assert codes[0] is None and codes[3] == "b" and len(codes) == 4 and codes.values == [None, drop, "a", "b"]


def test_lowest_keeps_the_lowest_scores_below_one_first_seen_first():
    low = Lowest(size=3)
    rec = {"quality": {"reasons": ["r"]}, "messages": [{"role": "user", "content": "q"},
                                                       {"role": "assistant", "content": "a" * 400}]}
    assert not low.wants(1.0)
    for i, score in enumerate([0.9, 1.0, 0.5, 0.7, 0.5, 0.95, 0.1]):
        low.offer(score, f"id{i}", f"f:{i}", rec)
    assert [(s, i) for s, i, *_ in low.items] == [(0.1, "id6"), (0.5, "id2"), (0.5, "id4")]
    assert not low.wants(0.5) and low.wants(0.49)
    assert low.stats()[0] == {"score": 0.1, "id": "id6", "where": "f:6", "reasons": ["r"], "answer": "a" * 300}


@pytest.mark.parametrize("module", ["sftflow.data.signals.judge", "sftflow.data.signals.semantic"])
def test_the_judge_and_the_semantic_step_are_filters(module):
    import importlib

    m = importlib.import_module(module)
    step = m.Judge if module.endswith("judge") else m.Semantic
    assert issubclass(step, Filter)
