"""Human ratings in SQLite, next to the predictions they rate: RUN/eval/review.sqlite.

Each submit is its own committed transaction, so stopping the server loses nothing. A
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
"""


class AlreadyRated(Exception):
    pass


class ReviewStore:
    """One connection per call: the web server answers from several threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self._connect() as db:
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (secrets.token_hex(16),))
            self._salt = db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0]

    @contextlib.contextmanager
    def _connect(self):
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
        """Store one rating; a second one for the same outputs is refused (AlreadyRated)."""
        row = {c: rating.get(c) for c in COLUMNS}
        row.update(tuned_hash=output_hash(tuned), base_hash=output_hash(base),
                   created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with self._connect() as db:
            old = db.execute("SELECT tuned_hash, base_hash FROM ratings WHERE example_id = ? AND reviewer = ?",
                             (row["example_id"], row["reviewer"])).fetchone()
            if old is not None:
                if (old["tuned_hash"], old["base_hash"]) == (row["tuned_hash"], row["base_hash"]):
                    raise AlreadyRated(f"example {row['example_id']} is already rated by {row['reviewer']}")
                db.execute("DELETE FROM ratings WHERE example_id = ? AND reviewer = ?",
                           (row["example_id"], row["reviewer"]))  # stale: the outputs changed since
            db.execute(f"INSERT INTO ratings ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                       [row[c] for c in COLUMNS])

    def ratings(self, reviewer: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM ratings", ()
        if reviewer is not None:
            query, args = query + " WHERE reviewer = ?", (reviewer,)
        with self._connect() as db:
            return [dict(r) for r in db.execute(query + " ORDER BY created_at, rowid", args)]

    def get(self, example_id: str, reviewer: str) -> dict | None:
        with self._connect() as db:
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
