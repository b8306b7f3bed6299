"""Every input row's fate, named once.

Every row read ends in exactly one fate: kept (in train, val or test), rejected (it could not
become a record), duplicate, filtered, or unused. `Fate` names them for the state arrays (its
number), the ledger and the data card (`word`) and stats.json's counts (`counted_as`); `Fates`
holds the decisions `decide` (rules.py) made on the records it decided together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

BEYOND_MIX = "beyond data.mix.ratio"
SOURCE_WEIGHT = "source_weight"  # a training row beyond its source's data.sources weight
SOURCE_MAX_ROWS = "source_max_rows"  # a row past its source's data.sources max_rows


class Fate(IntEnum):
    """A row's fate; the number is its code in the state arrays (REJECTED is never in one)."""

    KEPT = 0
    DUPLICATE = 1
    FILTERED = 2
    UNUSED = 3
    REJECTED = 4  # a row that never became a record

    @property
    def word(self) -> str:
        """The ledger's decision and the data card's fate column: kept, duplicate, ..."""
        return self.name.lower()

    @property
    def counted_as(self) -> str:
        """Its key in stats.json's totals and per-file counts (duplicates in the plural)."""
        return "duplicates" if self is Fate.DUPLICATE else self.word


RECORD_FATES = (Fate.KEPT, Fate.DUPLICATE, Fate.FILTERED, Fate.UNUSED)  # the states a record can have
KEPT, DUPLICATE, FILTERED, UNUSED = RECORD_FATES


@dataclass
class Fates:
    """The decisions on the records decided together (`rows`, sorted); every other record is kept
    unless filtered, in the split the store's "split" column gives it."""

    rows: np.ndarray
    state: np.ndarray  # KEPT / DUPLICATE / FILTERED / UNUSED
    split: np.ndarray  # 0 train, 1 val, 2 test; -1 where not kept
    keeper: np.ndarray  # record index of the cluster's kept member
    near: np.ndarray  # a near (not exact) duplicate of its keeper
    keepers: dict[str, np.ndarray]  # "row" (sorted), "id", "file", "line" of every keeper of a duplicate
    why_unused: dict[int, str] = field(default_factory=dict)  # record → why, where not BEYOND_MIX
    synthetic: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    conflict: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # group per row of `rows`, -1
    weighted_out: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # records, sorted
    semantic: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # a duplicate by embeddings only

    def why(self, record: int) -> str:
        """Why an unused record is unused."""
        k = int(np.searchsorted(self.weighted_out, record))
        if k < len(self.weighted_out) and self.weighted_out[k] == record:
            return SOURCE_WEIGHT
        return self.why_unused.get(record, BEYOND_MIX)

    def semantic_in(self, start: int, size: int) -> np.ndarray:
        """Whether records start ... start + size - 1 are duplicates joined by semantic edges alone."""
        out = np.zeros(size, dtype=bool)
        if len(self.semantic):
            lo, hi = np.searchsorted(self.rows, [start, start + size])
            out[self.rows[lo:hi] - start] = self.semantic[lo:hi]
        return out

    def conflicts_in(self, start: int, size: int) -> np.ndarray:
        """Conflict group of records start ... start + size - 1 (-1: none)."""
        out = np.full(size, -1, dtype=np.int64)
        lo, hi = np.searchsorted(self.rows, [start, start + size])
        out[self.rows[lo:hi] - start] = self.conflict[lo:hi]
        return out

    def block(self, start: int, filter_codes: np.ndarray, splits: np.ndarray):
        """(state, split, keeper, near) of records start, start + 1, ... for one block of the store."""
        state = np.where(filter_codes > 0, FILTERED, KEPT).astype(np.int8)
        split = splits.copy()
        keeper = np.full(len(state), -1, dtype=np.int64)
        near = np.zeros(len(state), dtype=bool)
        lo, hi = np.searchsorted(self.rows, [start, start + len(state)])
        at = self.rows[lo:hi] - start
        state[at], split[at], keeper[at], near[at] = self.state[lo:hi], self.split[lo:hi], self.keeper[lo:hi], self.near[lo:hi]
        return state, split, keeper, near

    def keeper_where(self, record: int) -> tuple[str, int, int]:
        """(id, file code, line) of a keeper record, for the ledger's "duplicate of" line."""
        k = int(np.searchsorted(self.keepers["row"], record))
        return f"{int(self.keepers['id'][k]):016x}", int(self.keepers["file"][k]), int(self.keepers["line"][k])
