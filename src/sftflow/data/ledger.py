"""Provenance ledger: where every example came from and what happened to it.

SQLite, one row per input row in `examples` and one per decision in `decisions`
(kept, rejected, duplicate, split, trained-on). `sftflow audit` reads it back.
"""

from __future__ import annotations

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
CREATE INDEX IF NOT EXISTS decisions_example ON decisions(example_id);
"""


class Ledger:
    def __init__(self, path: str | Path):
        self.conn = sqlite3.connect(str(path))
        self.conn.executescript(SCHEMA)

    def add_example(self, example_id: str, file: str, line: int, fmt: str, origin: str = "human") -> None:
        self.conn.execute(
            "INSERT INTO examples VALUES (?, ?, ?, ?, ?, ?, ?)",
            (example_id, example_id, file, line, fmt, origin, time.time()),
        )

    def decide(self, example_id: str | None, file: str | None, line: int | None, stage: str, decision: str,
               reason: str = "", detail: str = "", run_id: str = "") -> None:
        self.conn.execute(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (example_id, file, line, stage, decision, reason, detail, run_id, time.time()),
        )

    def history(self, example_id: str) -> list[dict]:
        cur = self.conn.execute(
            "SELECT stage, decision, reason, detail, run_id, source_file, source_line FROM decisions "
            "WHERE example_id = ? ORDER BY rowid",
            (example_id,),
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur]

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()
