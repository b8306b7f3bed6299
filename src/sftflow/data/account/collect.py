"""Pass 1's sink: each chunk's rows, in input order, handed to the small objects that keep them.

A rejected row goes to rejects.jsonl and the ledger; a record goes to the spool file (its
text, read again in pass 2), to the key columns (its hashes, score, flags and MinHash
signatures: what the decisions need), to the ledger with its provenance, and past the
censuses (system prompts, formats, personal data, lowest scores). `Collector` only routes;
each concern is its own object.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from sftflow.config.data import DedupConfig
from sftflow.data.account.census import Formats, Lowest, PersonalData, SystemPrompts
from sftflow.data.account.decisions import Decisions
from sftflow.data.account.ledger import Ledger
from sftflow.data.columns import Codes, ColumnStore
from sftflow.data.decide.dedup import NearDupIndex
from sftflow.data.decide.fate import SOURCE_MAX_ROWS, Fate
from sftflow.data.signals.rows import Chunk, RawRow, SourceSpec
from sftflow.data.sizes import SIZES, Sizes
from sftflow.data.step import Drop
from sftflow.data_folder import LEDGER, REJECTS

SPOOL = "spool.jsonl"  # one record a line, in the key columns' order; removed after pass 2
_COLUMN = re.compile(r" at (column|byte) \d+")
COLUMNS = {"id": np.uint64, "file": np.int32, "line": np.int64, "exact": np.uint64, "prompt": np.uint64,
           "answer": np.uint64,
           "own": np.uint64, "score": np.float32, "mix": bool, "origin": np.int8, "truncated": bool,
           "tokens": np.int32, "synthetic": bool, "pii": bool, "filter": np.int32, "reasons": np.int32}


class Rejects:
    """rejects.jsonl: file, line, field, reason and raw preview of every rejected row; reasons counted by kind."""

    def __init__(self, path: Path):
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.reasons: Counter = Counter()

    def add(self, file: str, line: int, field: str | None, reason: str, raw_preview: str) -> None:
        short = _COLUMN.sub("", reason)  # "invalid JSON ... at column 7" grouped by kind, the fix kept
        self.reasons[f"{field}: {short}" if field else short] += 1
        self.file.write(json.dumps({"file": file, "line": line, "field": field, "reason": reason, "raw": raw_preview},
                                   ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.file.close()


class Provenance:
    """How each synthetic example was made and what the LLM judge said of it: in the ledger, and counted
    by teacher model and template for stats.json."""

    def __init__(self, decisions: Decisions):
        self.decisions = decisions
        self.teachers: Counter = Counter()
        self.templates: Counter = Counter()

    def add(self, rec: dict, file: str, line: int) -> None:
        prov = rec["source"].get("synthetic")
        if prov is not None:
            template = prov.get("template") if isinstance(prov.get("template"), dict) else {}
            self.teachers[str(prov.get("teacher"))] += 1
            self.templates[str(template.get("id"))] += 1
            self.decisions.synthetic(rec["id"], file, line, prov)
        verdict = rec["quality"].get("judge")
        if verdict is not None:
            self.decisions.judged(rec["id"], file, line, verdict)


class Keys:
    """Per-record keys in column files (~60 bytes a record; texts stay in the spool), the MinHash indexes,
    and the codes of the values repeated in the columns."""

    def __init__(self, work: Path, d: DedupConfig, stratified: bool, sizes: Sizes = SIZES):
        self.store = ColumnStore(work / "columns", COLUMNS, sizes.block)
        self.near_whole = NearDupIndex(d.threshold, d.num_perm, d.ngram, verify=True, spool=work / "signatures.u32",
                                       sizes=sizes)
        self.near_prompt = NearDupIndex(d.threshold, d.num_perm, d.ngram, verify=True,
                                        spool=work / "prompt_signatures.u32", sizes=sizes)
        self.files, self.origins = Codes(), Codes()
        self.drops = Codes(None)  # the "filter" column's codes → why filtered; 0: not filtered
        self.quality_reasons = Codes("")  # the quality rules a record tripped, for the ledger
        self.strata: list | None = [] if stratified else None

    def add(self, chunk: Chunk, file_code: int, src: SourceSpec) -> None:
        cur: dict[str, list] = defaultdict(list)
        for row in chunk.rows:
            if row.reject is not None:
                continue
            rec = row.record
            origin = rec["source"]["origin"]
            for name, value in (("id", int(rec["id"], 16)), ("file", file_code), ("line", row.line),
                                ("exact", row.exact_key), ("prompt", row.prompt_key), ("answer", row.answer_key),
                                ("own", row.own_key), ("score", row.score), ("mix", src.mix),
                                ("origin", self.origins(origin)), ("truncated", row.truncated),
                                ("tokens", row.tokens if row.tokens is not None else -1),
                                ("synthetic", origin == "synthetic"), ("pii", bool(row.pii)),
                                ("filter", self.drops(row.drop)),
                                ("reasons", self.quality_reasons(", ".join(rec["quality"]["reasons"])))):
                cur[name].append(value)
            if self.strata is not None:
                self.strata.append(row.stratum)
        if cur:
            self.store.append(cur)
        self.near_whole.add(chunk.sig_whole)
        self.near_prompt.add(chunk.sig_prompt)

    def drop(self, drops: dict[int, Drop]) -> None:
        """Records filtered after the read pass (the semantic step): their drop's code in the filter column."""
        if drops:
            codes = self.store.read("filter", 0, len(self.store))  # 4 bytes a record
            for r, drop in drops.items():
                codes[r] = self.drops(drop)
            self.store.add_column("filter", np.int32, [codes])


class Files:
    """Rows of each file by what became of them, and each file's data.sources entry."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.source_of: dict[str, int] = {}  # file → its data.sources entry
        self.rows_read = 0
        self.capped = 0  # rows past a source's max_rows

    def read(self, src: SourceSpec, n: int) -> Counter:
        self.source_of[src.file] = src.source
        self.rows_read += n
        counts = self.counts[src.file]
        counts["read"] += n
        return counts


class Collector:
    """Routes pass 1's rows, in input order, to the objects that keep them."""

    def __init__(self, work: Path, dedup: DedupConfig, stratified: bool, sizes: Sizes = SIZES):
        self.ledger = Ledger(work / LEDGER)
        self.decisions = Decisions(self.ledger)
        self.spool = open(work / SPOOL, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.rejects = Rejects(work / REJECTS)
        self.keys = Keys(work, dedup, stratified, sizes)
        self.files = Files()
        self.provenance = Provenance(self.decisions)
        self.systems, self.formats, self.pii, self.lowest = SystemPrompts(), Formats(), PersonalData(), Lowest()
        self.filter_counts: dict[str, Counter] = defaultdict(Counter)  # filter code → seen, kept, dropped

    def add_capped(self, rows: list[RawRow], src: SourceSpec, cap: int) -> None:
        """Rows past the source's max_rows: unused, with the reason, without being converted."""
        counts = self.files.read(src, len(rows))
        for r in rows:
            self.decisions.past_max_rows(src.file, r.line, src.source, cap)
        self.files.capped += len(rows)
        counts[Fate.UNUSED.counted_as] += len(rows)
        counts[SOURCE_MAX_ROWS] += len(rows)

    def add(self, chunk: Chunk, src: SourceSpec) -> None:
        counts = self.files.read(src, len(chunk.rows))
        file_code = self.keys.files(src.file)
        for row in chunk.rows:
            if row.reject is not None:
                counts[Fate.REJECTED.counted_as] += 1
                self.rejects.add(src.file, row.line, *row.reject, row.raw_preview)
                self.decisions.rejected(src.file, row.line, *row.reject)
                continue
            rec = row.record
            self.formats.add(src.file, row.format)
            if not src.mix:
                self.systems.add(row.system)
            self.pii.add(row.pii)
            self.decisions.record(rec, src.file, row.line, row.format)
            self.provenance.add(rec, src.file, row.line)
            self.spool.write(json.dumps(rec, ensure_ascii=False) + "\n")
            if not src.mix:
                self.lowest.offer(row.score, rec["id"], f"{src.file}:{row.line}", rec)
        self.keys.add(chunk, file_code, src)
        for code, c in chunk.filter_counts.items():
            self.filter_counts[code].update(c)

    def close_pass(self) -> None:
        """The end of pass 1: the spool, rejects and key columns are complete."""
        self.spool.close()
        self.rejects.close()
        self.keys.store.close()
