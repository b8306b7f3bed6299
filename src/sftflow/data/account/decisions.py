"""The ledger's lines for prepare's decisions: each fate worded in one place.

Pass 1 writes the rows that never became a record (rejected, past a source's max_rows) and the
records with where they came from; pass 2 writes every record's fate and split; the conflicts
and the provenance of synthetic and judged examples have their own stages. `sftflow audit`
reads them back (audit.py).
"""

from __future__ import annotations

import json

from sftflow.data.account.ledger import Ledger
from sftflow.data.decide.fate import SOURCE_MAX_ROWS, Fate
from sftflow.data.step import Drop


class Decisions:
    """Writes prepare's decisions to the ledger; `ledger` is the open ledger of this run."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def _prepare(self, rid: str | None, file: str, line: int, fate: Fate, reason: str = "", detail: str = "") -> None:
        self.ledger.decide(rid, file, line, "prepare", fate.word, reason, detail)

    def rejected(self, file: str, line: int, field: str | None, reason: str) -> None:
        self._prepare(None, file, line, Fate.REJECTED, reason, field or "")

    def past_max_rows(self, file: str, line: int, source: int, cap: int) -> None:
        self._prepare(None, file, line, Fate.UNUSED, SOURCE_MAX_ROWS, f"past data.sources[{source}].max_rows {cap}")

    def record(self, rec: dict, file: str, line: int, fmt: str) -> None:
        self.ledger.add_example(rec["id"], file, line, fmt, rec["source"]["origin"])

    def filtered(self, rid: str, file: str, line: int, drop: Drop, score: float) -> None:
        self._prepare(rid, file, line, Fate.FILTERED, drop.reason,
                      f"score {score:.3f}" + (f"; {drop.detail}" if drop.detail else ""))

    def duplicate(self, rid: str, file: str, line: int, how: str, keeper: str, score: str) -> None:
        self._prepare(rid, file, line, Fate.DUPLICATE, f"{how} duplicate of {keeper}", score)

    def unused(self, rid: str, file: str, line: int, why: str, score: str) -> None:
        self._prepare(rid, file, line, Fate.UNUSED, why, score)

    def kept(self, rid: str, file: str, line: int, split: str, truncated: bool, detail: str) -> None:
        self._prepare(rid, file, line, Fate.KEPT, "truncated" if truncated else "", detail)
        self.ledger.decide(rid, file, line, "split", split)

    def conflict(self, rid: str, file: str, line: int, group: int) -> None:
        self.ledger.decide(rid, file, line, "conflicts", "conflict", f"group {group}: one prompt, different answers")

    def synthetic(self, rid: str, file: str, line: int, prov: dict) -> None:
        """How a synthetic example was made: its provenance row and a `synth` decision."""
        self.ledger.add_synthetic(rid, file, line, prov)
        template = prov.get("template") if isinstance(prov.get("template"), dict) else {}
        self.ledger.decide(rid, file, line, "synth", "generated",
                           f"teacher {prov.get('teacher')}, template {template.get('id')}",
                           json.dumps({k: prov.get(k) for k in ("strategy", "seed_ids", "created_at")}
                                      | {"params": template.get("params")}))

    def judged(self, rid: str, file: str, line: int, verdict: dict) -> None:
        """What the LLM judge said of a record, or why it could not."""
        if "error" in verdict:
            self.ledger.decide(rid, file, line, "judge", "not scored", verdict["error"])
        else:
            self.ledger.decide(rid, file, line, "judge", "scored", verdict["reasons"],
                               json.dumps({k: verdict[k] for k in ("correctness", "helpfulness", "format", "mean",
                                                                     "model", "rubric")}))
