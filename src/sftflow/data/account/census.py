"""What prepare counts as the records go by, each a small object with its own warnings or stats:
the system prompts (a census of the task's templates), the row formats of each file, personal
data found, and the lowest-scored examples the data card shows."""

from __future__ import annotations

from collections import Counter, defaultdict

from sftflow.data.decide.dedup import hash64
from sftflow.example import Example

MAX_SYSTEM_PROMPTS = 100_000  # distinct system prompts counted one by one (memory stays bounded)
SYSTEM_TEXTS = 10_000  # distinct system prompts whose text is kept for the data card
LOWEST_SHOWN = 10


class SystemPrompts:
    """How many task rows use each system prompt (by hash), and the text of the first ones seen."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.text: dict[int, str] = {}
        self.beyond_cap = 0  # rows whose system prompt arrived after MAX_SYSTEM_PROMPTS distinct ones

    def add(self, system: str | None) -> None:
        key = hash64(system or "")
        if key in self.counts or len(self.counts) < MAX_SYSTEM_PROMPTS:
            self.counts[key] += 1
        else:  # a census, not an index: past the cap, new prompts are counted together
            self.beyond_cap += 1
        if len(self.text) < SYSTEM_TEXTS:
            self.text.setdefault(key, system or "")

    def warnings(self) -> list[str]:
        out: list[str] = []
        total = sum(self.counts.values()) + self.beyond_cap
        if not total or len(self.counts) <= 1:
            return out
        top_key, top = self.counts.most_common(1)[0]
        none_count = self.counts.get(hash64(""), 0)
        if 0 < none_count < total:
            out.append(f"{none_count} of {total} examples have no system prompt and the rest do; "
                       "set data.system_prompt to give every example the same one")
        if len(self.counts) > 10 and top / total < 0.5:
            out.append(f"system prompts vary widely: {len(self.counts)} distinct, the most common covers only "
                       f"{top / total:.0%} (e.g. {self.text.get(top_key, '')[:60]!r})")
        return out

    def stats(self) -> dict:
        return {"distinct": len(self.counts), "beyond_cap": self.beyond_cap,
                "top": [[self.text.get(k, "")[:200], v] for k, v in self.counts.most_common(3)]}


class Formats:
    """Rows of each file by the row format they were read as."""

    def __init__(self) -> None:
        self.per_file: dict[str, Counter] = defaultdict(Counter)

    def add(self, file: str, fmt: str) -> None:
        self.per_file[file][fmt] += 1

    def warnings(self) -> list[str]:
        out = []
        for file, fmts in self.per_file.items():
            if len(fmts) > 1:
                mixed = ", ".join(f"{k} {v}" for k, v in fmts.most_common())
                out.append(f"{file} mixes row formats ({mixed}); all are converted to one chat template, "
                           "but check that this is intended")
        return out

    def stats(self) -> dict:
        return {f: dict(v) for f, v in self.per_file.items()}


class PersonalData:
    """Rows with personal data, by kind (found before any redaction)."""

    def __init__(self) -> None:
        self.rows = 0
        self.kinds: Counter = Counter()

    def add(self, kinds: list[str]) -> None:
        if kinds:
            self.rows += 1
            self.kinds.update(kinds)


class Lowest:
    """The LOWEST_SHOWN lowest-scored examples (below 1.0), lowest first; ties keep the first seen."""

    def __init__(self, size: int = LOWEST_SHOWN):
        self.size = size
        self.items: list[tuple[float, str, str, list, str]] = []  # (score, id, where, quality reasons, answer)

    def wants(self, score: float) -> bool:
        """Whether an example with this score would be listed (asked first: the record need not be parsed)."""
        return score < 1.0 and (len(self.items) < self.size or score < self.items[-1][0])

    def offer(self, score: float, rid: str, where: str, rec: dict) -> None:
        if self.wants(score):
            self.items.append((score, rid, where, rec["quality"]["reasons"], Example.of(rec).answer_text[:300]))
            self.items.sort(key=lambda x: x[0])
            del self.items[self.size:]

    def stats(self) -> list[dict]:
        return [{"score": round(s, 3), "id": i, "where": w, "reasons": r, "answer": a} for s, i, w, r, a in self.items]
