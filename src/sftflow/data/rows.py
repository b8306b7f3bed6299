"""One chunk of raw rows → canonical records with everything later decisions need.

This is the per-row work of `prepare` (convert, check length with the real tokenizer and
template, score quality, compute duplicate keys and MinHash signatures), kept free of
global state so chunks can run in worker processes (`prepare --workers N`) and give the
same result as one process: the main process only collects results in input order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from sftflow.data.dedup import content_hash, dedup_key, dedup_texts, hash64, loose, prompt_key
from sftflow.data.formats import RowError, convert_row
from sftflow.data.load import RawRow
from sftflow.data.quality import find_pii, redact, score_messages, score_text
from sftflow.data.split import NgramIndex

MAX_RAW_IN_REJECT = 2000  # characters of the raw row kept in rejects.jsonl


@dataclass
class SourceSpec:
    """How to read one source file (from its config entry)."""

    file: str  # as shown to the user (relative to the config)
    format: str = "auto"
    mapping: dict = field(default_factory=dict)
    origin: str = "human"
    mix: bool = False  # general data for mixing into train
    source: int = -1  # index of its data.sources entry (-1: synthetic candidates, general mix)


@dataclass
class RowSettings:
    system_prompt: str | None = None
    allow_text: bool = False
    group_field: str | None = None
    stratify_field: str | None = None
    quality: bool = True
    threshold: float = 0.5
    pii: str = "flag"
    max_tokens: int | None = None
    truncate: bool = False
    model_path: str | None = None  # tokenizer for the length check; None = no check
    chat_template: str | None = None
    trust_remote_code: bool = False
    num_perm: int = 128
    ngram: int = 5
    benchmark: NgramIndex | None = None
    benchmark_prompts: frozenset = frozenset()


@dataclass
class Row:
    """A processed input row: either a reject, or a record with its keys and score."""

    line: int
    reject: tuple[str | None, str] | None = None  # (field, reason)
    raw_preview: str = ""
    record: dict | None = None
    format: str | None = None
    exact_key: int = 0
    prompt_key: int = 0
    answer_key: int = 0  # the final answer, loosely normalised: differing answers to one prompt conflict
    own_key: int = 0  # the split group key of this row alone
    score: float = 1.0
    filter_reason: str | None = None
    stratum: str | None = None
    system: str | None = None  # the system prompt, for the template census
    tokens: int | None = None
    truncated: bool = False
    pii: list[str] = field(default_factory=list)  # kinds found before any redaction: email, phone, card


@dataclass
class Chunk:
    rows: list[Row]
    sig_whole: np.ndarray  # MinHash signatures of the records (rows without reject), in order
    sig_prompt: np.ndarray


def _preview(row) -> str:
    try:
        text = row if isinstance(row, str) else json.dumps(row, ensure_ascii=False, default=str)
    except RecursionError:
        return "(nested too deeply to show)"
    text = text if len(text) <= MAX_RAW_IN_REJECT else text[:MAX_RAW_IN_REJECT] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # rejects.jsonl must stay writable


class RowProcessor:
    def __init__(self, settings: RowSettings):
        self.s = settings
        self._tok = None

    @property
    def tokenizer(self):
        if self._tok is None and self.s.model_path:
            from sftflow.model.load import load_tokenizer

            self._tok = load_tokenizer(self.s.model_path, chat_template=self.s.chat_template,
                                       trust_remote_code=self.s.trust_remote_code)
        return self._tok

    def process(self, raws: list[RawRow], src: SourceSpec) -> Chunk:
        rows = [self._convert(raw, src) for raw in raws]
        records = [r for r in rows if r.reject is None]
        self._check_lengths(records)
        from sftflow.data.dedup import NearDupIndex

        texts = [dedup_texts(r.record) for r in records if r.reject is None]
        sig = NearDupIndex.signatures_of
        return Chunk(rows, sig([t[0] for t in texts], self.s.num_perm, self.s.ngram),
                     sig([t[1] for t in texts], self.s.num_perm, self.s.ngram))

    def _convert(self, raw: RawRow, src: SourceSpec) -> Row:
        s = self.s
        if raw.error is not None:
            return self._reject(raw, raw.field, raw.error)
        try:
            fmt, record = convert_row(raw.row, src.format, mapping=src.mapping, system_prompt=s.system_prompt,
                                      allow_text=s.allow_text or src.mix)
        except RowError as err:
            return self._reject(raw, err.field, err.reason)
        row = Row(raw.line, record=record, format=fmt)
        raw_row = raw.row
        if s.group_field and raw_row.get(s.group_field) is not None:
            group = str(raw_row[s.group_field])
            row.own_key = hash64("group:" + group)
        else:
            group = None
        if s.stratify_field:
            value = raw_row.get(s.stratify_field)
            row.stratum = None if value is None else str(value)

        texts = [m["content"] for m in record["messages"]] if "messages" in record else [record["text"]]
        row.pii = sorted({kind for t in texts for kind, _, _ in find_pii(t)})  # for the data card, before redaction
        if "messages" in record:
            if s.pii == "redact":
                record["messages"] = [{**m, "content": redact(m["content"])} for m in record["messages"]]
            quality = score_messages(record["messages"], s.pii)
            first = record["messages"][0]
            row.system = first["content"] if first["role"] == "system" else None
        else:
            if s.pii == "redact":
                record["text"] = redact(record["text"])
            quality = score_text(record["text"], s.pii)
        row.exact_key, row.prompt_key = dedup_key(record), prompt_key(record)
        row.answer_key = hash64(loose(record["messages"][-1]["content"] if "messages" in record else record["text"]))
        row.own_key = row.own_key or row.prompt_key
        row.score = quality.score
        if s.quality and quality.score < s.threshold:
            row.filter_reason = f"quality {quality.score:.2f} < {s.threshold:g}: {', '.join(quality.reasons)}"
        if s.benchmark is not None and row.filter_reason is None:
            row.filter_reason = self._contamination(record, row.prompt_key)
        origin = raw_row.get("origin") if isinstance(raw_row.get("origin"), str) else src.origin
        source = {"file": src.file, "line": raw.line, "format": fmt, "origin": "general-mix" if src.mix else origin}
        if origin == "synthetic" and isinstance(raw_row.get("synthetic"), dict):
            source["synthetic"] = raw_row["synthetic"]  # teacher, template, seeds, time: from `sftflow synth`
        row.record = {
            "id": content_hash(record),
            **record,
            "source": source,
            "group": group,
            "quality": quality.as_dict(),
        }
        return row

    def _reject(self, raw: RawRow, field_name: str | None, reason: str) -> Row:
        """A rejected row. Under pii: redact its raw preview and reason are redacted as well: they
        go to rejects.jsonl and the ledger, and personal data must be written nowhere."""
        preview = _preview(raw.raw if raw.raw is not None else raw.row)
        if self.s.pii == "redact":
            preview, reason = redact(preview), redact(reason)
        return Row(raw.line, reject=(field_name, reason), raw_preview=preview)

    def _contamination(self, record: dict, key: int) -> str | None:
        if key in self.s.benchmark_prompts:
            return "contaminated: its prompt is in a decontamination benchmark"
        whole, _ = dedup_texts(record)
        if self.s.benchmark.overlaps(whole) is not None:
            return f"contaminated: shares a {self.s.benchmark.n}-word sequence with a decontamination benchmark"
        return None

    def _check_lengths(self, rows: list[Row]) -> None:
        """Token counts with the real tokenizer and template; over-long rows are rejected unless truncate."""
        tok = self.tokenizer
        if tok is None or not rows:
            return
        from sftflow.model.chat import render

        texts, extra = [], []
        for r in rows:
            if "messages" in r.record:
                texts.append(render(tok, r.record["messages"]))
                extra.append(0)
            else:
                texts.append(r.record["text"])
                extra.append(1 + (tok.bos_token_id is not None))
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is not None and hasattr(backend, "encode_batch_fast"):  # Rust, parallel, no offsets: fastest
            counts = [len(e.ids) for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
        else:
            counts = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
        lengths = [n + e for n, e in zip(counts, extra, strict=True)]
        limit = self.s.max_tokens
        for r, n in zip(rows, lengths, strict=True):
            r.tokens = n
            if limit is None or n <= limit:
                continue
            if self.s.truncate:
                r.truncated = True
            else:
                r.reject = (None, f"{n} tokens > max_tokens {limit}; raise data.max_tokens or set data.truncate: true")
                r.raw_preview = _preview(r.record.get("messages") or r.record.get("text"))
                r.record = None
