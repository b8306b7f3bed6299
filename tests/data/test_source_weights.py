"""Weighted sources and max_rows (issue 22, item 5), through `sftflow prepare` as a user runs it.

The oracles are the rows the test wrote (which file, how many) and a second prepare of the same
files without weights: val/test must be byte for byte the same, and every training row the
weights dropped must appear in the ledger as unused with reason `source_weight`."""

import json
import os
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import yaml

from tests.support import SFTFLOW


def write_source(path: Path, topic: str, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"instruction": f"In the {topic} manual, what does step {i} of procedure {i * 31 % 977} say?",
             "output": f"Step {i} of the {topic} procedure {i * 31 % 977} says to check valve {i % 17} first."}
            for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def prepare(root: Path, sources: list[dict]) -> subprocess.CompletedProcess:
    cfg = {"data": {"sources": sources}, "model": {"name_or_path": "no-such-model"}}
    (root / "sftflow.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([SFTFLOW, "prepare", "sftflow.yaml", "--no-model"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)  # no model here: lengths unchecked


def train_files(root: Path) -> Counter:
    lines = (root / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    return Counter(json.loads(x)["source"]["file"] for x in lines)


def unused(root: Path, reason: str) -> Counter:
    with sqlite3.connect(root / "data" / "ledger.sqlite") as db:
        return Counter(f for (f,) in db.execute("SELECT source_file FROM decisions WHERE stage = 'prepare' AND "
                                                "decision = 'unused' AND reason = ?", (reason,)))


def test_weights_set_train_shares_and_leave_val_test_alone(tmp_path):
    root = tmp_path / "p"
    write_source(root / "raw" / "a.jsonl", "pump", 1000)
    write_source(root / "raw" / "b.jsonl", "boiler", 1000)
    plain = [{"path": "raw/a.jsonl"}, {"path": "raw/b.jsonl"}]
    r = prepare(root, plain)
    assert r.returncode == 0, r.stderr
    before = {s: (root / "data" / f"{s}.jsonl").read_bytes() for s in ("val", "test")}
    train_before = train_files(root)

    r = prepare(root, [{"path": "raw/a.jsonl", "weight": 0.75}, {"path": "raw/b.jsonl", "weight": 0.25}])
    assert r.returncode == 0, r.stderr
    for s in ("val", "test"):
        assert (root / "data" / f"{s}.jsonl").read_bytes() == before[s]  # splits decided before sampling
    train = train_files(root)
    share = train["raw/a.jsonl"] / sum(train.values())
    assert abs(share - 0.75) < 0.01, train
    assert train["raw/a.jsonl"] == train_before["raw/a.jsonl"]  # a limits train: all of its rows are used
    dropped = unused(root, "source_weight")
    assert dropped == Counter({"raw/b.jsonl": train_before["raw/b.jsonl"] - train["raw/b.jsonl"]})
    card = (root / "data" / "data_card.md").read_text(encoding="utf-8")
    row = next(line for line in card.splitlines() if line.startswith("| raw/b.jsonl | 0.25 |"))
    assert f"| {train['raw/b.jsonl']} | 0 | {dropped['raw/b.jsonl']} |" in row and "(target 25%)" in row

    again = prepare(root, [{"path": "raw/a.jsonl", "weight": 0.75}, {"path": "raw/b.jsonl", "weight": 0.25}])
    assert again.returncode == 0 and train_files(root) == train  # deterministic with the seed


def test_max_rows_reads_the_first_rows_and_records_the_rest(tmp_path):
    root = tmp_path / "p"
    write_source(root / "raw" / "a.jsonl", "pump", 300)
    write_source(root / "raw" / "b.jsonl", "boiler", 200)
    r = prepare(root, [{"path": "raw/a.jsonl", "max_rows": 120}, {"path": "raw/b.jsonl"}])
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(root / "data" / "ledger.sqlite") as db:
        lines = [n for (n,) in db.execute("SELECT source_line FROM decisions WHERE source_file = 'raw/a.jsonl' AND "
                                          "stage = 'prepare' AND reason = 'source_max_rows' ORDER BY source_line")]
        per_file = dict(db.execute("SELECT source_file, count(*) FROM decisions WHERE stage = 'prepare' "
                                   "GROUP BY source_file").fetchall())
    assert lines == list(range(121, 301))
    assert per_file == {"raw/a.jsonl": 300, "raw/b.jsonl": 200}
    stats = json.loads((root / "data" / "stats.json").read_text(encoding="utf-8"))
    assert stats["rows_read"] == 500 and stats["unused"] == 180


def test_weight_on_one_source_only_is_a_config_error(tmp_path):
    root = tmp_path / "p"
    write_source(root / "raw" / "a.jsonl", "pump", 10)
    write_source(root / "raw" / "b.jsonl", "boiler", 10)
    r = prepare(root, [{"path": "raw/a.jsonl", "weight": 0.5}, {"path": "raw/b.jsonl"}])
    assert r.returncode == 2 and "sources[1] (raw/b.jsonl) has no weight" in r.stderr, r.stderr
