"""data.semantic in prepare, with the real all-MiniLM-L6-v2: a planted paraphrased duplicate, an
unrelated answer and an outlier each get their fate and reason code in the ledger and show in the
data card; with the signals off nothing changes, and with them on nothing but those three moves."""

import json
import random
import sqlite3
import sys
from pathlib import Path

import pytest

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.errors import SftflowError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import quality as bench  # noqa: E402
from quality_pools import FACT_QUESTIONS, FACTS  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
FACT_SYSTEM, JSON_SYSTEM = "Answer the question in one sentence.", "Classify the customer message as JSON."
HAIKU = ("Write a haiku about autumn leaves.",
         "Red leaves drift and fall, the cold wind carries them home, autumn says goodbye.")


def chat(system: str, user: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user},
                         {"role": "assistant", "content": answer}]}


def rows() -> list[dict]:
    """Two tasks of 40 rows, then the three planted rows at lines 81, 82 and 83."""
    out = [chat(FACT_SYSTEM, FACT_QUESTIONS[rel][0].format(s=subj), sentence) for rel, subj, _, sentence in FACTS[:40]]
    rng = random.Random(0)
    out += [chat(JSON_SYSTEM, *bench.json_extract(rng)) for _ in range(40)]
    rel, subj, _, sentence = FACTS[0]
    out.append(chat(FACT_SYSTEM, FACT_QUESTIONS[rel][1].format(s=subj), sentence))  # line 1 asked in other words
    rel, subj, _, _ = FACTS[41]
    other = next(f[3] for f in FACTS[42:] if f[0] != rel)
    out.append(chat(FACT_SYSTEM, FACT_QUESTIONS[rel][0].format(s=subj), other))  # another question's answer
    out.append(chat(JSON_SYSTEM, *HAIKU))  # not the task at all, though the answer fits its prompt
    return out


def run(root: Path, semantic: dict | None) -> tuple[dict, Path]:
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows()))
    data = {"sources": [{"path": "raw/a.jsonl"}], **({"semantic": semantic} if semantic is not None else {})}
    cfg = parse_config({"data": data, "model": {"name_or_path": "no-such-model"}}, root=root)
    return prepare(cfg, log=lambda m: None), cfg.data_dir


def fates(data_dir: Path) -> dict[int, tuple[str, str, str, str]]:
    """source line → (example id, decision, reason, detail) of every prepare decision."""
    db = sqlite3.connect(data_dir / "ledger.sqlite")
    try:
        got = db.execute("SELECT source_line, example_id, decision, reason, detail FROM decisions "
                         "WHERE stage = 'prepare'").fetchall()
    finally:
        db.close()
    out = {line: tuple(rest) for line, *rest in got}
    assert len(out) == len(got), "a row with two fates"
    return out


def splits(data_dir: Path) -> dict[str, str]:
    return {json.loads(line)["id"]: name for name in ("train", "val", "test")
            for line in (data_dir / f"{name}.jsonl").read_text().splitlines()}


def test_semantic_signals_give_the_planted_rows_their_fates_and_move_nothing_else(tmp_path):
    off, off_dir = run(tmp_path / "off", {"enabled": False})
    default, default_dir = run(tmp_path / "default", None)
    assert "semantic" not in off and splits(off_dir) == splits(default_dir)
    assert off["kept"] == 83  # without the signals every planted row is kept

    on, on_dir = run(tmp_path / "on", {"enabled": True})
    got = fates(on_dir)
    assert len(got) == on["rows_read"] == 83 and sum(on[k] for k in ("kept", "duplicates", "filtered")) == 83
    keeper_id = got[1][0]
    assert got[81][1:3] == ("duplicate", f"semantic duplicate of {keeper_id} (raw/a.jsonl:1)")
    assert got[82][1:3] == ("filtered", "unrelated_answer") and "prompt-answer similarity" in got[82][3]
    assert got[83][1:3] == ("filtered", "semantic_outlier") and "task's centroid" in got[83][3]
    assert {line for line, (_, decision, _, _) in got.items() if decision != "kept"} == {81, 82, 83}

    # on = off minus the three, every other example in the split it had: nothing moved, nothing leaks
    planted = {got[line][0] for line in (81, 82, 83)}
    assert splits(on_dir) == {i: s for i, s in splits(off_dir).items() if i not in planted}
    s = on["semantic"]
    assert (s["embedded"], s["unrelated_answer"], s["semantic_outlier"], s["duplicates"]) == (83, 1, 1, 1)
    [cluster] = s["clusters_shown"]
    assert [(m["where"], m["fate"]) for m in cluster] == [("raw/a.jsonl:1", "kept"), ("raw/a.jsonl:81", "duplicate")]

    card = (on_dir / "data_card.md").read_text()
    section = card[card.index("## Semantic signals"):]
    assert "1. cluster of 2" in section and "Which city is the capital of Australia?" in section
    assert "| unrelated_answer |" in section and "| semantic_outlier |" in section and HAIKU[0] in section
    assert "- unrelated_answer: 1" in card and "- semantic_outlier: 1" in card  # the filter reasons list


def test_missing_extra_stops_prepare_before_any_work_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # what an install without it looks like
    with pytest.raises(SftflowError, match=r"^semantic signals need the semantic extra: "
                                           r"pip install 'sftflow\[semantic\]'$"):
        run(tmp_path, {"enabled": True})
    assert not (tmp_path / "data" / "train.jsonl").exists()
