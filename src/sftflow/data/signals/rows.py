"""One chunk of raw rows → canonical records with everything later decisions need.

This is the per-row work of `prepare` (convert, check length with the real tokenizer and
template, score quality, run the filter chain of decide/filters.py, compute duplicate keys and
MinHash signatures), kept free of
global state so chunks can run in worker processes (`prepare --workers N`) and give the
same result as one process: the main process only collects results in input order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from sftflow.data.decide.dedup import content_hash, dedup_key, dedup_texts, hash64, loose, prompt_key
from sftflow.data.decide.filters import chain, first_drop
from sftflow.data.decide.split import NgramIndex
from sftflow.data.pii import find_pii, redact, redact_message
from sftflow.data.quality import Quality, score_messages, score_text
from sftflow.data.read.account import RawRow
from sftflow.data.step import Drop
from sftflow.errors import RowError, SftflowError
from sftflow.example import Example
from sftflow.formats import convert_example
from sftflow.io import preview


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
    template_date: str = "2025-01-01"
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
    drop: Drop | None = None  # why the filter chain (decide/filters.py), the judge or the semantic step filtered it
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
    filter_counts: dict[str, Counter] = field(default_factory=dict)  # filter code → seen, kept, dropped in this chunk


class RowProcessor:
    def __init__(self, settings: RowSettings):
        self.s = settings
        self._chat = None
        self.filters = chain(settings)

    @property
    def chat(self):
        """The model's ChatTemplate (its tokenizer and template facts), loaded when first asked; None without a model."""
        if self._chat is None and self.s.model_path:
            from sftflow.model.load import load_chat

            self._chat = load_chat(self.s.model_path, chat_template=self.s.chat_template,
                                   trust_remote_code=self.s.trust_remote_code, template_date=self.s.template_date)
        return self._chat

    @property
    def tokenizer(self):
        return self.chat.tokenizer if self.chat is not None else None

    def process(self, raws: list[RawRow], src: SourceSpec) -> Chunk:
        self.filters = chain(self.s)  # fresh counts per chunk (the main process adds them up); settings may change
        rows = [self._convert(raw, src) for raw in raws]
        records = [r for r in rows if r.reject is None]
        self._check_lengths(records)
        records = [r for r in records if r.reject is None]  # not rejected as over-long
        for r in records:  # only records meet the filters, so their counts agree with the ledger's fates
            r.drop = first_drop(self.filters, r)
        from sftflow.data.decide.dedup import NearDupIndex

        texts = [dedup_texts(r.record) for r in records]
        sig = NearDupIndex.signatures_of
        return Chunk(rows, sig([t[0] for t in texts], self.s.num_perm, self.s.ngram),
                     sig([t[1] for t in texts], self.s.num_perm, self.s.ngram),
                     {f.code: Counter(f.counts) for f in self.filters})

    def _convert(self, raw: RawRow, src: SourceSpec) -> Row:
        """One raw row: a reject, or a record with its keys and score."""
        if raw.error is not None:
            return self._reject(raw, raw.field, raw.error)
        try:
            fmt, example = convert_example(raw.row, src.format, mapping=src.mapping,
                                           system_prompt=self.s.system_prompt, allow_text=self.s.allow_text or src.mix)
        except RowError as err:
            return self._reject(raw, err.field, err.reason)
        row = Row(raw.line, format=fmt)
        group = self._group_and_stratum(row, raw.row)
        quality = self._scan(row, example)
        self._keys(row, example)
        row.score = quality.score
        example.id, example.source, example.group = content_hash(example), self._source(raw, src, fmt), group
        example.quality = quality.as_dict()
        row.record = example.to_dict()
        return row

    def _group_and_stratum(self, row: Row, raw_row: dict) -> str | None:
        """The row's data.group_field value (its own split group key) and data.stratify_field label."""
        s, group = self.s, None
        if s.group_field and raw_row.get(s.group_field) is not None:
            group = str(raw_row[s.group_field])
            row.own_key = hash64("group:" + group)
        if s.stratify_field:
            value = raw_row.get(s.stratify_field)
            row.stratum = None if value is None else str(value)
        return group

    def _scan(self, row: Row, ex: Example) -> Quality:
        """Personal data found (before redaction, for the data card), redacted if so configured, then
        the quality score; the system prompt for the template census. Tool calls and results count."""
        row.pii = sorted({kind for t in ex.texts() for kind, _, _ in find_pii(t)})
        redacting = self.s.pii == "redact"
        if ex.is_text:
            if redacting:
                ex.text = redact(ex.text)
            return score_text(ex.text, self.s.pii)
        if redacting:
            ex.messages = [redact_message(m) for m in ex.messages]
        row.system = ex.system
        return score_messages([{"role": m.role, "content": "\n".join(m.texts())} for m in ex.messages], self.s.pii)

    @staticmethod
    def _keys(row: Row, ex: Example) -> None:
        """Duplicate keys: the whole example, its prompt, its final answer; the prompt groups it unless a
        group field did."""
        row.exact_key, row.prompt_key = dedup_key(ex), prompt_key(ex)
        row.answer_key = hash64(loose(ex.answer_text))
        row.own_key = row.own_key or row.prompt_key

    @staticmethod
    def _source(raw: RawRow, src: SourceSpec, fmt: str) -> dict:
        """Where the record came from; a row's own "origin" field overrides its source's."""
        origin = raw.row.get("origin") if isinstance(raw.row.get("origin"), str) else src.origin
        source = {"file": src.file, "line": raw.line, "format": fmt, "origin": "general-mix" if src.mix else origin}
        if origin == "synthetic" and isinstance(raw.row.get("synthetic"), dict):
            source["synthetic"] = raw.row["synthetic"]  # teacher, template, seeds, time: from `sftflow synth`
        return source

    def _reject(self, raw: RawRow, field_name: str | None, reason: str) -> Row:
        """A rejected row. Under pii: redact its raw preview and reason are redacted as well: they
        go to rejects.jsonl and the ledger, and personal data must be written nowhere."""
        shown = preview(raw.raw if raw.raw is not None else raw.row)
        if self.s.pii == "redact":
            shown, reason = redact(shown), redact(reason)
        return Row(raw.line, reject=(field_name, reason), raw_preview=shown)

    def _check_lengths(self, rows: list[Row]) -> None:
        """Token counts with the real tokenizer and template; over-long rows are rejected unless truncate."""
        tok = self.tokenizer
        if tok is None or not rows:
            return
        from sftflow.model.chat import render

        texts, extra, rendered = [], [], []
        for r in rows:
            ex = Example.of(r.record)
            if ex.is_text:
                texts.append(ex.text)
                extra.append(1 + (tok.bos_token_id is not None))
            elif ex.tools:  # the model's template may not render tools, or not these (one call a turn)
                try:
                    texts.append(render(self.chat, ex.messages, tools=ex.template_tools()))
                except Exception as err:  # noqa: BLE001 - sftflow's tool_support reason, or the template's own
                    r.reject = ("tools", str(err) if isinstance(err, SftflowError)
                                else f"the chat template cannot render this conversation ({err})")
                    r.raw_preview, r.record = preview(r.record.get("messages")), None
                    continue
                extra.append(0)
            else:
                texts.append(render(self.chat, ex.messages))
                extra.append(0)
            rendered.append(r)
        rows = rendered
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
                r.raw_preview = preview(r.record.get("messages") or r.record.get("text"))
                r.record = None
