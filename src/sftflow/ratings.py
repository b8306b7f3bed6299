"""What the judge and review both read of human ratings: which ratings still describe the
outputs in predictions.jsonl. Review writes the ratings (sftflow/review/store.py); the data
stage's judge only reads them, through here, without importing the review app.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path


def output_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def current(ratings: list[dict], predictions: dict[str, dict]) -> list[dict]:
    """The ratings of the outputs in predictions.jsonl now (not stale, example still there)."""
    out = []
    for r in ratings:
        p = predictions.get(r["example_id"])
        if p and r["tuned_hash"] == output_hash(p["tuned"]) and r["base_hash"] == output_hash(p["base"]):
            out.append(r)
    return out


def read_rated(db_file: Path) -> list[dict]:
    """The ratings that were not skipped, read-only ([] from a file that is not a ratings database)."""
    ro = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    ro.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in ro.execute("SELECT * FROM ratings WHERE skipped = 0")]
    except sqlite3.DatabaseError:
        return []
    finally:
        ro.close()
