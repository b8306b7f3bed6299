"""prepare's per-record filters: small steps that keep a record or drop it with a reason code.

    data:
      quality: {threshold: 0.5}      # LowQuality
      quality: {enabled: false, pii: drop}  # PersonalData (with scoring on, LowQuality drops it)
      decontaminate: [bench/*.jsonl]  # Contaminated

In the spirit of datatrove's filters: a filter implements only `check(row) -> Drop | None`; the
base class counts what it saw, kept and dropped (`counts`). `RowProcessor` (rows.py) runs the
chain in `FILTERS` order on every converted record and the first drop wins. A `Drop` carries a
stable code and the words the ledger and the data card show, decided here by the filter, so
stats.json, the data card and the ledger read fields and never parse text back. The LLM judge
(judge.py) and the semantic step (semantic_step.py) drop records later, with the same `Drop`.

Adding a filter = one class here, listed in `FILTERS`, and one test in tests/test_filters.py.
Rows that cannot become a record at all (bad JSON, unknown format, too many tokens) are
*rejected* instead (rows.py, formats.py), with the field and reason in rejects.jsonl.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sftflow.data.decide.dedup import dedup_texts

if TYPE_CHECKING:
    from sftflow.data.signals.rows import Row, RowSettings

LOW_QUALITY = "low_quality"
CONTAMINATED = "contaminated"
PERSONAL_DATA = "pii"


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


def low_quality(score: float, threshold: float, rules: list[str]) -> Drop:
    """A score below the threshold, counted by the quality rules the record tripped (quality.py)."""
    tripped = ", ".join(rules)
    return Drop(LOW_QUALITY, f"quality {score:.2f} < {threshold:g}: {tripped}", counted_as=tripped)


class Filter:
    """One step of the chain: `check` says why a record goes, or None to keep it."""

    code = ""

    def __init__(self) -> None:
        self.counts: Counter = Counter()  # seen, kept, dropped

    def __call__(self, row: Row) -> Drop | None:
        drop = self.check(row)
        self.counts["seen"] += 1
        self.counts["kept" if drop is None else "dropped"] += 1
        return drop

    def check(self, row: Row) -> Drop | None:
        raise NotImplementedError

    @classmethod
    def wanted(cls, s: RowSettings) -> bool:
        """Whether the settings switch this filter on."""
        return True


class LowQuality(Filter):
    """The rule-based quality score (quality.py) below data.quality.threshold; with data.quality.pii:
    drop, personal data scores 0 and is dropped here too."""

    code = LOW_QUALITY

    def __init__(self, s: RowSettings):
        super().__init__()
        self.threshold = s.threshold

    @classmethod
    def wanted(cls, s: RowSettings) -> bool:
        return s.quality

    def check(self, row: Row) -> Drop | None:
        if row.score < self.threshold:
            return low_quality(row.score, self.threshold, row.record["quality"]["reasons"])
        return None


class PersonalData(Filter):
    """data.quality.pii: drop with the quality score switched off. With it on, personal data scores 0
    and LowQuality drops the record (counted as `pii`); without it, this filter does, counted alike."""

    code = PERSONAL_DATA

    @classmethod
    def wanted(cls, s: RowSettings) -> bool:
        return s.pii == "drop" and not s.quality

    def __init__(self, s: RowSettings):
        super().__init__()

    def check(self, row: Row) -> Drop | None:
        if row.pii:
            return Drop(PERSONAL_DATA, f"personal data: {', '.join(row.pii)} (data.quality.pii: drop)")
        return None


class Contaminated(Filter):
    """A record whose prompt is in a data.decontaminate benchmark, or that shares a word n-gram with one."""

    code = CONTAMINATED

    def __init__(self, s: RowSettings):
        super().__init__()
        self.benchmark, self.prompts = s.benchmark, s.benchmark_prompts

    @classmethod
    def wanted(cls, s: RowSettings) -> bool:
        return s.benchmark is not None

    def check(self, row: Row) -> Drop | None:
        if row.prompt_key in self.prompts:
            return Drop(CONTAMINATED, "contaminated: its prompt is in a decontamination benchmark")
        whole, _ = dedup_texts(row.record)
        if self.benchmark.overlaps(whole) is not None:
            return Drop(CONTAMINATED, f"contaminated: shares a {self.benchmark.n}-word sequence with a "
                                      "decontamination benchmark")
        return None


FILTERS: tuple[type[Filter], ...] = (LowQuality, PersonalData, Contaminated)  # in the order they run


def chain(s: RowSettings) -> list[Filter]:
    """The filters these settings switch on, in order."""
    return [f(s) for f in FILTERS if f.wanted(s)]


def first_drop(filters: list[Filter], row: Row) -> Drop | None:
    """The first filter that drops the record decides; the ones after it do not see it."""
    for f in filters:
        if (drop := f(row)) is not None:
            return drop
    return None
