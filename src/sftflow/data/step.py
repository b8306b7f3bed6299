"""The step API of prepare: a named step with its own settings and its own counters.

In the spirit of datatrove's `PipelineStep`: a step gets the settings it needs as constructor
arguments (never the whole Config), so it can be built and tested alone, and counts what it
did in `counts`. A `Filter` is a step that keeps a record or drops it with a `Drop`; it
implements only `check(row)`, and the base class counts what it saw, kept and dropped. The rule
filters (decide/filters.py) run on every converted row in the worker processes; the LLM judge
(signals/judge.py) checks a chunk at a time in the main process; the semantic step
(signals/semantic.py) checks every record at once after the read pass. All three drop a
record the same way, with a `Drop`, and stats.json, the data card and the ledger read its code.
stats.json's "steps" holds every step's counters in pipeline order; the rule filters count a
chunk at a time in the workers and the main process adds the chunks up (account/collect.py).

A new filter: one `Filter` subclass with `of(settings)` (None when the settings switch it
off) and `check(row)`, listed in decide/filters.py's `FILTERS`, and its test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Drop:
    """Why a record is filtered: a stable reason code, and what the outputs show of it."""

    code: str  # stable snake_case: low_quality, contaminated, unrelated_answer, semantic_outlier
    reason: str  # the ledger's reason column
    detail: str = ""  # the ledger's detail column, after the record's score
    counted_as: str | None = None  # its key in stats.json filter_reasons and the data card; None: the code

    @property
    def kind(self) -> str:
        return self.code if self.counted_as is None else self.counted_as


class Step:
    """One named step of prepare; `counts` is what it did, by name."""

    name = ""

    def __init__(self) -> None:
        self.counts: Counter = Counter()


class Filter(Step):
    """A step that keeps a record (None) or drops it with a reason (`check`); the base class counts."""

    code = ""  # the reason code of its drops

    def __init__(self) -> None:
        super().__init__()
        self.counts.update(seen=0, kept=0, dropped=0)  # all three in stats.json, a zero included

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.code

    @classmethod
    def of(cls, settings: Any) -> Filter | None:
        """The filter these settings ask for, or None when they switch it off."""
        raise NotImplementedError

    def check(self, row: Any) -> Drop | None:
        raise NotImplementedError

    def __call__(self, row: Any) -> Drop | None:
        drop = self.check(row)
        self.counted(drop)
        return drop

    def counted(self, drop: Drop | None) -> Drop | None:
        """Count one record seen, and whether it was kept or dropped."""
        self.counts["seen"] += 1
        self.counts["kept" if drop is None else "dropped"] += 1
        return drop

    def filter(self, rows: list) -> None:
        """Check the rows of a chunk that are still records and not dropped yet; a drop lands on the row.
        A filter that asks about a batch at once (the LLM judge) overrides this."""
        for row in rows:
            if row.reject is None and row.drop is None:
                row.drop = self(row)
