"""Exact duplicate detection on normalised content.

Normalisation (Unicode NFKC, whitespace collapsed, ends stripped) makes rows that differ
only in spacing or encoding count as one; case is kept, since "HELLO" and "Hello" teach
different behaviour. The same hash gives every example its stable id.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()[:16]


def content_hash(record: dict) -> str:
    """Stable id of a canonical record: first 16 hex of sha256 over its normalised content."""
    if "text" in record:
        return _digest(["text", normalise(record["text"])])
    return _digest([[m["role"], normalise(m["content"])] for m in record["messages"]])


def prompt_hash(record: dict) -> str:
    """Hash of everything the model is shown (all but the final answer): the default split group,
    so one prompt with two answers can never sit in both train and test."""
    if "text" in record:
        return content_hash(record)
    return _digest([[m["role"], normalise(m["content"])] for m in record["messages"][:-1]])


class ExactDedup:
    """Keeps the first occurrence of each content hash; later ones are duplicates of it."""

    def __init__(self) -> None:
        self.first_seen: dict[str, str] = {}

    def check(self, record_id: str, where: str) -> str | None:
        """Returns where the original was seen if this id is a duplicate, else None."""
        if record_id in self.first_seen:
            return self.first_seen[record_id]
        self.first_seen[record_id] = where
        return None
