"""Human ratings in SQLite, next to the predictions they rate: RUN/eval/review.sqlite.

Each submit is its own committed transaction, so stopping the server loses nothing. The
reviewers (names, batch numbers, whether the batch is submitted) and the login sessions live
here too (review/identity.py): the name a rating is filed under comes from the server, never
from a cookie. A
rating is stored unblinded (which model was shown as A is recorded, and the scores are
filed under `tuned_*` / `base_*`), with a hash of both outputs: when `sftflow eval` is
re-run and the outputs change, old ratings are stale — left out of every statistic and
replaced when the reviewer rates the example again.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import secrets
import sqlite3
import time
from pathlib import Path

from sftflow.io import csv_row
from sftflow.ratings import output_hash

MODELS = ("tuned", "base")
SCORES = ("coherence", "correctness")
FLAGS = ("safety", "hallucination")
TEXTS = ("span", "note")
PER_MODEL = [*SCORES, *FLAGS, *TEXTS]
COLUMNS = ["example_id", "reviewer", "skipped", "a_model", "preferred",
           *[f"{m}_{f}" for m in MODELS for f in PER_MODEL], "tuned_hash", "base_hash", "created_at"]

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ratings (
  example_id TEXT NOT NULL,
  reviewer TEXT NOT NULL,
  skipped INTEGER NOT NULL,
  a_model TEXT NOT NULL CHECK (a_model IN ('tuned', 'base')),
  preferred TEXT CHECK (preferred IN ('tuned', 'base', 'tie')),
  {", ".join(f"{m}_{f} INTEGER" for m in MODELS for f in (*SCORES, *FLAGS))},
  {", ".join(f"{m}_{f} TEXT" for m in MODELS for f in TEXTS)},
  tuned_hash TEXT NOT NULL,
  base_hash TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (example_id, reviewer)
);
CREATE TABLE IF NOT EXISTS reviewers (
  key TEXT PRIMARY KEY,           -- the name case-folded: "Alice" and "alice" are one reviewer
  name TEXT NOT NULL,             -- as first typed
  number INTEGER NOT NULL UNIQUE, -- 0, 1, 2 ... in order of first login: picks the batch
  submitted_at TEXT               -- set when the reviewer submits their batch: ratings are final
);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,            -- the random value of the session cookie
  role TEXT NOT NULL CHECK (role IN ('reviewer', 'admin')),
  reviewer TEXT,                  -- reviewers.name for a reviewer's session
  created_at TEXT NOT NULL
);
"""


class ReviewStore:
    """One connection per call: the web server answers from several threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self.connect() as db:
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (secrets.token_hex(16),))
            self._salt = db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0]

    @contextlib.contextmanager
    def connect(self):
        """A connection for one transaction: committed (or rolled back) and closed."""
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a rating acknowledged is a rating on disk
            with db:
                yield db
        finally:
            db.close()

    def a_model(self, example_id: str, reviewer: str) -> str:
        """Which model this reviewer sees as A for this example: random-looking, fixed per
        (example, reviewer) so a reload shows the same order, and secret (salted)."""
        digest = hashlib.sha256(f"{self._salt}\0{example_id}\0{reviewer}".encode()).digest()
        return MODELS[digest[0] & 1]

    def add(self, rating: dict, *, tuned: str, base: str) -> None:
        """Store one rating, replacing this reviewer's earlier one of the example (a correction
        before the batch is submitted, or a re-rating of outputs a later eval changed)."""
        row = {c: rating.get(c) for c in COLUMNS}
        row.update(tuned_hash=output_hash(tuned), base_hash=output_hash(base),
                   created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with self.connect() as db:
            db.execute("DELETE FROM ratings WHERE example_id = ? AND reviewer = ?", (row["example_id"], row["reviewer"]))
            db.execute(f"INSERT INTO ratings ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                       [row[c] for c in COLUMNS])

    def ratings(self, reviewer: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM ratings", ()
        if reviewer is not None:
            query, args = query + " WHERE reviewer = ?", (reviewer,)
        with self.connect() as db:
            return [dict(r) for r in db.execute(query + " ORDER BY created_at, rowid", args)]

    def get(self, example_id: str, reviewer: str) -> dict | None:
        with self.connect() as db:
            r = db.execute("SELECT * FROM ratings WHERE example_id = ? AND reviewer = ?",
                           (example_id, reviewer)).fetchone()
        return dict(r) if r else None


def to_csv(ratings: list[dict]) -> str:
    """Reviewers' notes and spans are free text: cells that would run as formulas are text. Rows
    end in CRLF (RFC 4180), so a field holding a lone CR is quoted too (with "\n" it was not)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(csv_row(r) for r in ratings)
    return buf.getvalue()


def to_jsonl(ratings: list[dict]) -> str:
    return "".join(json.dumps({c: r.get(c) for c in COLUMNS}, ensure_ascii=False) + "\n" for r in ratings)
