"""prepare's per-record filters: small steps that keep a record or drop it with a reason code.

    data:
      quality: {threshold: 0.5}      # LowQuality
      quality: {enabled: false, pii: drop}  # PersonalData (with scoring on, LowQuality drops it)
      decontaminate: [bench/*.jsonl]  # Contaminated
      quality: {enabled: true}       # EchoedPrompt too

Each is a `Filter` step (step.py): `of(settings)` builds it from the row settings it reads (None
when they switch it off) and `check(row) -> Drop | None` decides; the base class counts what it
saw, kept and dropped. `RowProcessor` (signals/rows.py) runs the chain in `FILTERS` order on
every converted record and the first drop wins. A `Drop` carries a stable code and the words the
ledger and the data card show, decided here by the filter, so stats.json, the data card and the
ledger read fields and never parse text back. The LLM judge (signals/judge.py) and the semantic
step (signals/semantic.py) are filters too, run later on the same records.

Adding a filter = one class here, listed in `FILTERS`, and one test in tests/data/test_filters.py.
Rows that cannot become a record at all (bad JSON, unknown format, too many tokens) are
*rejected* instead (signals/rows.py, formats.py), with the field and reason in rejects.jsonl.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sftflow.data.decide.dedup import dedup_texts
from sftflow.data.step import Drop, Filter

if TYPE_CHECKING:
    from sftflow.data.decide.split import NgramIndex
    from sftflow.data.signals.rows import Row, RowSettings

LOW_QUALITY = "low_quality"
CONTAMINATED = "contaminated"
PERSONAL_DATA = "pii"
ECHOED_PROMPT = "echoed_prompt"


def low_quality(score: float, threshold: float, rules: list[str]) -> Drop:
    """A score below the threshold, counted by the quality rules the record tripped (quality.py)."""
    tripped = ", ".join(rules)
    return Drop(LOW_QUALITY, f"quality {score:.2f} < {threshold:g}: {tripped}", counted_as=tripped)


class LowQuality(Filter):
    """The rule-based quality score (quality.py) below data.quality.threshold; with data.quality.pii:
    drop, personal data scores 0 and is dropped here too."""

    code = LOW_QUALITY

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    @classmethod
    def of(cls, s: RowSettings) -> LowQuality | None:
        return cls(s.threshold) if s.quality else None

    def check(self, row: Row) -> Drop | None:
        if row.score < self.threshold:
            return low_quality(row.score, self.threshold, row.record["quality"]["reasons"])
        return None


class PersonalData(Filter):
    """data.quality.pii: drop with the quality score switched off. With it on, personal data scores 0
    and LowQuality drops the record (counted as `pii`); without it, this filter does, counted alike."""

    code = PERSONAL_DATA

    @classmethod
    def of(cls, s: RowSettings) -> PersonalData | None:
        return cls() if s.pii == "drop" and not s.quality else None

    def check(self, row: Row) -> Drop | None:
        if row.pii:
            return Drop(PERSONAL_DATA, f"personal data: {', '.join(row.pii)} (data.quality.pii: drop)")
        return None


class Contaminated(Filter):
    """A record whose prompt is in a data.decontaminate benchmark, or that shares a word n-gram with one."""

    code = CONTAMINATED

    def __init__(self, benchmark: NgramIndex, prompts: frozenset):
        super().__init__()
        self.benchmark, self.prompts = benchmark, prompts

    @classmethod
    def of(cls, s: RowSettings) -> Contaminated | None:
        return None if s.benchmark is None else cls(s.benchmark, s.benchmark_prompts)

    def check(self, row: Row) -> Drop | None:
        if row.prompt_key in self.prompts:
            return Drop(CONTAMINATED, "contaminated: its prompt is in a decontamination benchmark")
        whole, _ = dedup_texts(row.record)
        if self.benchmark.overlaps(whole) is not None:
            return Drop(CONTAMINATED, f"contaminated: shares a {self.benchmark.n}-word sequence with a "
                                      "decontamination benchmark")
        return None


# what an echo puts before the prompt it repeats: a quote mark, or a label ("Q:", "Prompt:")
_ECHO_MARK = re.compile(r"^(?:>\s*|(?:q|question|prompt|input|user)\s*:\s*)", re.IGNORECASE)


def _bare(text: str) -> str:
    """Text as an echo is compared: no quote mark or label in front, case and spacing aside, no quotes around."""
    return " ".join(_ECHO_MARK.sub("", text.strip()).casefold().split()).strip("\"'“”‘’ ")


class EchoedPrompt(Filter):
    """An answer that only repeats the user turn before it ('549 - 63 = ?' answered '549 - 63 = ?', or
    '> …', 'Q: …'), however short. The quality rule answer_copies_prompt needs 10 characters of words
    before it judges, so bench/quality.py's short prompt copies passed it; no clean benchmark row, of
    any task, answers with its whole prompt."""

    code = ECHOED_PROMPT

    @classmethod
    def of(cls, s: RowSettings) -> EchoedPrompt | None:
        return cls() if s.quality else None

    def check(self, row: Row) -> Drop | None:
        turns = row.record.get("messages") or []
        for user, answer in zip(turns, turns[1:], strict=False):
            if user["role"] == "user" and answer["role"] == "assistant" and user.get("content") and \
                    answer.get("content") and _bare(answer["content"]) == _bare(user["content"]):
                return Drop(ECHOED_PROMPT, "the answer repeats its prompt")
        return None


FILTERS: tuple[type[Filter], ...] = (LowQuality, PersonalData, Contaminated, EchoedPrompt)  # in the order they run


def chain(s: RowSettings) -> list[Filter]:
    """The filters these settings switch on, in order."""
    return [f for cls in FILTERS if (f := cls.of(s)) is not None]


def first_drop(filters: list[Filter], row: Row) -> Drop | None:
    """The first filter that drops the record decides; the ones after it do not see it."""
    for f in filters:
        if (drop := f(row)) is not None:
            return drop
    return None
