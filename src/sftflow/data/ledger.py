"""Provenance ledger: where every example came from and what happened to it.

SQLite, append-only. `examples` has one row per input row that became a record (id,
source file and line, format, origin); `decisions` one row per decision about an input
row: rejected, filtered, duplicate, kept, split, and — appended by `sftflow train` —
trained-on, with the run id; `runs` one row per training run with the fingerprint of the
data it used. `prepare` builds a fresh ledger next to the old one and swaps it in
atomically, carrying over the runs recorded so far, so an interrupted prepare never
leaves a half-written ledger. `sftflow audit` reads it back (see audit.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS examples (
    id TEXT, content_hash TEXT, source_file TEXT, source_line INTEGER,
    source_format TEXT, origin TEXT, created_at REAL
);
CREATE TABLE IF NOT EXISTS decisions (
    example_id TEXT, source_file TEXT, source_line INTEGER, stage TEXT, decision TEXT,
    reason TEXT, detail TEXT, run_id TEXT, at REAL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT, name TEXT, started_at REAL, data_fingerprint TEXT, train_examples INTEGER,
    method TEXT, model TEXT, config TEXT
);
CREATE INDEX IF NOT EXISTS decisions_example ON decisions(example_id);
CREATE INDEX IF NOT EXISTS decisions_file ON decisions(source_file, source_line);
CREATE INDEX IF NOT EXISTS decisions_run ON decisions(run_id);
CREATE INDEX IF NOT EXISTS examples_id ON examples(id);
"""


class Ledger:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.conn = sqlite3.connect(str(path))
        self.conn.executescript(SCHEMA)
        self._examples: list[tuple] = []
        self._decisions: list[tuple] = []

    def add_example(self, example_id: str, file: str, line: int, fmt: str, origin: str = "human") -> None:
        self._examples.append((example_id, example_id, file, line, fmt, origin, time.time()))
        if len(self._examples) >= 10_000:
            self.flush()

    def decide(self, example_id: str | None, file: str | None, line: int | None, stage: str, decision: str,
               reason: str = "", detail: str = "", run_id: str = "") -> None:
        self._decisions.append((example_id, file, line, stage, decision, reason, detail, run_id, time.time()))
        if len(self._decisions) >= 10_000:
            self.flush()

    def flush(self) -> None:
        with self.conn:
            self.conn.executemany("INSERT INTO examples VALUES (?, ?, ?, ?, ?, ?, ?)", self._examples)
            self.conn.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._decisions)
        self._examples.clear()
        self._decisions.clear()

    def carry_runs_from(self, old: Path) -> int:
        """Copy the training runs (and their trained-on decisions) of a previous ledger."""
        if not old.exists():
            return 0
        self.flush()
        try:
            self.conn.execute("ATTACH DATABASE ? AS old", (str(old),))
        except sqlite3.DatabaseError:
            return 0
        try:
            with self.conn:
                n = self.conn.execute("INSERT INTO runs SELECT * FROM old.runs").rowcount
                self.conn.execute("INSERT INTO decisions SELECT * FROM old.decisions WHERE stage = 'train'")
        except sqlite3.DatabaseError:  # a ledger from an older sftflow without runs: nothing to carry
            n = 0
        self.conn.execute("DETACH DATABASE old")
        return n

    def record_run(self, run_id: str, name: str, fingerprint: str, example_ids: list[str], *, method: str,
                   model: str, config: dict) -> None:
        """Append one training run and a trained-on decision per example, in one transaction."""
        now = time.time()
        with self.conn:
            self.conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, now, fingerprint, len(example_ids), method, model, json.dumps(config)),
            )
            self.conn.executemany(
                "INSERT INTO decisions VALUES (?, NULL, NULL, 'train', 'trained-on', '', '', ?, ?)",
                [(i, run_id, now) for i in example_ids],
            )

    def history(self, example_id: str) -> list[dict]:
        return self.query(
            "SELECT stage, decision, reason, detail, run_id, source_file, source_line FROM decisions "
            "WHERE example_id = ? ORDER BY rowid",
            (example_id,),
        )

    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        cur = self.conn.execute(sql, params)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur]

    def close(self) -> None:
        self.flush()
        self.conn.close()
