"""The data stage: raw files → canonical, scored, deduplicated, split examples with a full account.

    sftflow prepare sftflow.yaml [--show 3] [--workers 2]

Every input row ends in exactly one fate: kept (in train, val or test), rejected (with file,
line, field and reason, in rejects.jsonl), duplicate (of the kept example's id), filtered
(low quality or contaminated, with score and reasons), or unused (general mix-in data beyond
the mix ratio; synthetic rows over data.synth.max_train_share or in a group with human test
rows; rows past a source's max_rows, or training rows beyond its weight). `kept + rejected + duplicates + filtered + unused == rows read` is checked before
anything is published. With data.quality.judge, an LLM judge's verdict joins the rule score
(judge.py); `sftflow synth` candidates are read as one more source (origin synthetic).

Three passes keep memory flat in the size of the input: (1) stream the sources in chunks,
convert and score rows, write records to a spool file and their keys (hashes, score, flags,
MinHash signatures and band hashes) to column files on disk; (2) find equal keys a key range
at a time, decide the records that have something in common with another (duplicates, shared
prompts or groups, mix-in and synthetic rows: decide.py) together and every other one from its
own key, and stream the spool into train/val/test.jsonl a block at a time; (3) check val/test
against train for leaks a hash range at a time. What grows with the input is the records with
something in common (about 70 bytes each at the peak) and, with data.stratify_field, all
records (every group is ranked within its label).
Outputs are written to a temporary folder and moved into place at the end, so an
interrupted prepare leaves the previous outputs intact.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from sftflow.config import Config
from sftflow.data.card import write_data_card
from sftflow.data.columns import ColumnStore, file_blocks
from sftflow.data.conflicts import SHOWN_GROUPS
from sftflow.data.decide import DUPLICATE, FILTERED, KEPT, SOURCE_WEIGHT, UNUSED, Fates, decide
from sftflow.data.dedup import NearDupIndex, dedup_texts, hash64, key_ranges, keys_in_range
from sftflow.data.filters import Drop
from sftflow.data.hub import DatasetPart, dataset_parts, read_part
from sftflow.data.ledger import Ledger
from sftflow.data.load import ReadAccount, check_account, read_rows, resolve_sources
from sftflow.data.rows import Chunk, RawRow, RowProcessor, RowSettings, SourceSpec
from sftflow.data.split import NGRAM, SPLITS, NgramIndex, ngram_hashes
from sftflow.data_folder import PUBLISHING, finish_interrupted_publish, publish
from sftflow.errors import SftflowError, SftflowWarning
from sftflow.example import Example
from sftflow.io import write_json
from sftflow.model.resolve import Unreachable, locate_model
from sftflow.progress import phase

CHUNK = 2048
WRITE_BLOCK = 1 << 14  # records written out per block in pass 2 (their keys become Python objects there)
MIN_TEST_EXAMPLES = 50  # below this a test metric is mostly noise
PLAYBOOK_MIN_EXAMPLES = 500  # practice's starting point for a task
LOWEST_SHOWN = 10
_COLUMN = re.compile(r" at (column|byte) \d+")
COLUMNS = {"id": np.uint64, "file": np.int32, "line": np.int64, "exact": np.uint64, "prompt": np.uint64,
           "answer": np.uint64,
           "own": np.uint64, "score": np.float32, "mix": bool, "origin": np.int8, "truncated": bool,
           "tokens": np.int32, "synthetic": bool, "pii": bool, "filter": np.int32, "reasons": np.int32}
MAX_SYSTEM_PROMPTS = 100_000  # distinct system prompts counted one by one (memory stays bounded)
NGRAM_RANGE = 1 << 20  # n-grams (train and val/test together) matched at once in the leakage report (~30 MiB)
SOURCE_MAX_ROWS = "source_max_rows"  # a row past its source's data.sources max_rows


@dataclass
class Capped:
    """Rows of a source past its max_rows: read (every row gets a fate) but not converted."""

    rows: list[RawRow]


def display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _chunks(rows: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(rows, size)):
        yield batch


class Collector:
    """Gathers chunk results in input order: per-row keys in arrays, records in a spool file."""

    def __init__(self, work: Path, cfg: Config):
        d = cfg.data.dedup
        self.ledger = Ledger(work / "ledger.sqlite")
        self.spool = open(work / "spool.jsonl", "w", encoding="utf-8")  # noqa: SIM115 - closed in finish()
        self.rejects = open(work / "rejects.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self.near_whole = NearDupIndex(d.threshold, d.num_perm, d.ngram, verify=True, spool=work / "signatures.u32")
        self.near_prompt = NearDupIndex(d.threshold, d.num_perm, d.ngram, verify=True,
                                        spool=work / "prompt_signatures.u32")
        # per-record keys (~60 bytes a record) in column files; texts stay in the spool file
        self.store = ColumnStore(work / "columns", COLUMNS)
        self.files: list[str] = []
        self.origins: list[str] = []
        self.drops: list[Drop | None] = [None]  # the "filter" column's codes → why filtered; 0: not filtered
        self._drop_code: dict[Drop, int] = {}
        self.filter_counts: dict[str, Counter] = defaultdict(Counter)  # filter code → seen, kept, dropped
        self.quality_reasons: list[str] = [""]  # code → the quality rules a record tripped, for the ledger
        self._quality_code: dict[str, int] = {"": 0}
        self.strata: list | None = [] if cfg.data.stratify_field else None
        self.per_file: dict[str, Counter] = defaultdict(Counter)
        self.formats: dict[str, Counter] = defaultdict(Counter)
        self.systems: Counter = Counter()
        self.system_text: dict[int, str] = {}
        self.systems_beyond_cap = 0  # rows whose system prompt arrived after MAX_SYSTEM_PROMPTS distinct ones
        self.reject_reasons: Counter = Counter()
        self.lowest: list[tuple[float, str, str, list]] = []
        self.rows_read = 0
        self.pii_kinds: Counter = Counter()  # rows with personal data, by kind (found before redaction)
        self.pii_rows = 0
        self.source_of: dict[str, int] = {}  # file → its data.sources entry
        self.capped = 0  # rows past a source's max_rows
        self.teachers: Counter = Counter()  # synthetic records by teacher model and by template
        self.templates: Counter = Counter()

    @staticmethod
    def code(table: list[str], value: str) -> int:
        if value not in table:
            table.append(value)
        return table.index(value)

    def add_capped(self, rows: list[RawRow], src: SourceSpec, cap: int) -> None:
        """Rows past the source's max_rows: unused, with the reason, without being converted."""
        counts = self.per_file[src.file]
        self.source_of[src.file] = src.source
        for r in rows:
            self.ledger.decide(None, src.file, r.line, "prepare", "unused", SOURCE_MAX_ROWS,
                               f"past data.sources[{src.source}].max_rows {cap}")
        self.rows_read += len(rows)
        self.capped += len(rows)
        counts["read"] += len(rows)
        counts["unused"] += len(rows)
        counts[SOURCE_MAX_ROWS] += len(rows)

    def add(self, chunk: Chunk, src: SourceSpec) -> None:
        counts = self.per_file[src.file]
        self.source_of[src.file] = src.source
        file_code = self.code(self.files, src.file)
        cur: dict[str, list] = defaultdict(list)
        for row in chunk.rows:
            self.rows_read += 1
            counts["read"] += 1
            if row.reject is not None:
                field, reason = row.reject
                counts["rejected"] += 1
                short = _COLUMN.sub("", reason.split(";")[0])  # group "invalid JSON ... at column 7" by kind
                self.reject_reasons[f"{field}: {short}" if field else short] += 1
                self.rejects.write(json.dumps({"file": src.file, "line": row.line, "field": field, "reason": reason,
                                               "raw": row.raw_preview}, ensure_ascii=False) + "\n")
                self.ledger.decide(None, src.file, row.line, "prepare", "rejected", reason, field or "")
                continue
            rec = row.record
            self.formats[src.file][row.format] += 1
            if not src.mix:
                key = hash64(row.system or "")
                if key in self.systems or len(self.systems) < MAX_SYSTEM_PROMPTS:
                    self.systems[key] += 1
                else:  # a census, not an index: past the cap, new prompts are counted together
                    self.systems_beyond_cap += 1
                if len(self.system_text) < 10_000:
                    self.system_text.setdefault(key, row.system or "")
            cur["id"].append(int(rec["id"], 16))
            cur["file"].append(file_code)
            cur["line"].append(row.line)
            cur["exact"].append(row.exact_key)
            cur["prompt"].append(row.prompt_key)
            cur["answer"].append(row.answer_key)
            cur["own"].append(row.own_key)
            cur["score"].append(row.score)
            cur["mix"].append(src.mix)
            cur["origin"].append(self.code(self.origins, rec["source"]["origin"]))
            cur["truncated"].append(row.truncated)
            cur["tokens"].append(row.tokens if row.tokens is not None else -1)
            cur["synthetic"].append(rec["source"]["origin"] == "synthetic")
            cur["pii"].append(bool(row.pii))
            if row.pii:
                self.pii_rows += 1
                self.pii_kinds.update(row.pii)
            cur["filter"].append(self.drop_code(row.drop))
            cur["reasons"].append(self._quality_reasons_code(", ".join(rec["quality"]["reasons"])))
            if self.strata is not None:
                self.strata.append(row.stratum)
            self.ledger.add_example(rec["id"], src.file, row.line, row.format, rec["source"]["origin"])
            self._provenance(rec, src.file, row.line)
            self.spool.write(json.dumps(rec, ensure_ascii=False) + "\n")
            if not src.mix and row.score < 1.0 and (len(self.lowest) < LOWEST_SHOWN or row.score < self.lowest[-1][0]):
                self.lowest.append((row.score, rec["id"], f"{src.file}:{row.line}", rec["quality"]["reasons"],
                                    _answer(rec)[:300]))
                self.lowest.sort(key=lambda x: x[0])
                del self.lowest[LOWEST_SHOWN:]
        if cur:
            self.store.append(cur)
        for code, counts in chunk.filter_counts.items():
            self.filter_counts[code].update(counts)
        self.near_whole.add(chunk.sig_whole)
        self.near_prompt.add(chunk.sig_prompt)

    def _quality_reasons_code(self, reasons: str) -> int:
        code = self._quality_code.get(reasons)
        if code is None:
            code = self._quality_code[reasons] = len(self.quality_reasons)
            self.quality_reasons.append(reasons)
        return code

    def drop_code(self, drop: Drop | None) -> int:
        """The "filter" column's code for a drop (0: kept), numbered in order of first appearance."""
        if drop is None:
            return 0
        code = self._drop_code.get(drop)
        if code is None:
            code = self._drop_code[drop] = len(self.drops)
            self.drops.append(drop)
        return code

    def _provenance(self, rec: dict, file: str, line: int) -> None:
        """Ledger rows for how a synthetic example was made and what the LLM judge said of it."""
        prov = rec["source"].get("synthetic")
        if prov is not None:
            self.ledger.add_synthetic(rec["id"], file, line, prov)
            template = prov.get("template") if isinstance(prov.get("template"), dict) else {}
            self.teachers[str(prov.get("teacher"))] += 1
            self.templates[str(template.get("id"))] += 1
            self.ledger.decide(rec["id"], file, line, "synth", "generated",
                               f"teacher {prov.get('teacher')}, template {template.get('id')}",
                               json.dumps({k: prov.get(k) for k in ("strategy", "seed_ids", "created_at")}
                                          | {"params": template.get("params")}))
        verdict = rec["quality"].get("judge")
        if verdict is not None:
            if "error" in verdict:
                self.ledger.decide(rec["id"], file, line, "judge", "not scored", verdict["error"])
            else:
                self.ledger.decide(rec["id"], file, line, "judge", "scored", verdict["reasons"],
                                   json.dumps({k: verdict[k] for k in ("correctness", "helpfulness", "format", "mean",
                                                                         "model", "rubric")}))


def _settings(cfg: Config, log) -> tuple[RowSettings, str, RowProcessor | None]:
    """Row settings, how token lengths are checked (or why they are not), and a processor whose
    tokenizer is already loaded (None when there is no tokenizer)."""
    d = cfg.data
    s = RowSettings(
        system_prompt=d.system_prompt, allow_text=d.allow_text, group_field=d.group_field,
        stratify_field=d.stratify_field, quality=d.quality.enabled, threshold=d.quality.threshold,
        pii=d.quality.pii, max_tokens=d.max_tokens or cfg.train.max_length, truncate=d.truncate,
        chat_template=str(cfg.path(cfg.model.chat_template)) if cfg.model.chat_template else None,
        trust_remote_code=cfg.model.trust_remote_code, num_perm=d.dedup.num_perm, ngram=d.dedup.ngram,
        template_date=cfg.model.template_date,
    )
    try:
        model_path = cfg.model_path()  # a .gguf or offline short name: converted here, once
        locate_model(model_path, cfg.model.revision)  # a wrong id, a gated repo, no login: one line, now
    except Unreachable as err:  # offline and not cached (nor fetchable): prepare can do without the model
        length_check = (f"token lengths NOT checked: {err}; train will truncate over-long examples")
        warnings.warn(length_check, SftflowWarning, stacklevel=2)
        probe = None
    else:
        probe = RowProcessor(RowSettings(model_path=model_path, chat_template=s.chat_template,
                                         trust_remote_code=s.trust_remote_code, template_date=s.template_date))
        _ = probe.tokenizer  # loads it, or fails here with a clear message
        s.model_path = model_path
        probe.s = s
        length_check = f"token lengths measured with {cfg.model.name_or_path}'s tokenizer, limit {s.max_tokens}"
        from sftflow.model.system_role import FOLD_NOTE

        if probe.tokenizer.chat_template and probe.chat.refuses_system:
            log(f"prepare: {FOLD_NOTE}")
    if d.decontaminate:
        s.benchmark, s.benchmark_prompts = _benchmark_index(cfg)
    return s, length_check, probe


def _template_date(processor: RowProcessor | None) -> str | None:
    """The fixed date the chat template renders for today's (model.template_date), None where it writes none."""
    from sftflow.model.template import pinned_date

    tok = processor.tokenizer if processor is not None else None
    return pinned_date(tok.chat_template) if tok is not None else None


def _template_default(processor) -> str | None:
    """The system prompt the model's template renders for rows without one (None: it renders none,
    or no tokenizer was loaded); the data card names it."""
    if processor is None:
        return None
    return processor.chat.default_system if processor.chat is not None else None


def _benchmark_index(cfg: Config) -> tuple[NgramIndex, frozenset]:
    from sftflow.data.dedup import prompt_key
    from sftflow.formats import RowError, convert_row

    texts, prompts = [], set()
    for pattern in cfg.data.decontaminate:
        for path in resolve_sources(pattern, cfg.root):
            for raw in read_rows(path):
                if raw.error is not None:
                    continue
                try:
                    _, record = convert_row(raw.row, "auto", allow_text=True)
                except RowError:
                    continue
                texts.append(dedup_texts(record)[0])
                prompts.add(prompt_key(record))
    return NgramIndex(texts), frozenset(prompts)


def _judge(cfg: Config, log):
    if cfg.data.quality.judge is None:
        return None
    from sftflow.data.judge import Judge

    return Judge(cfg, log)


def _semantic_encoder(cfg: Config):
    """The sentence encoder when data.semantic is on (loaded offline), else None."""
    s = cfg.data.semantic
    if not s.enabled:
        return None
    from sftflow.data.semantic import load_encoder

    return load_encoder(str(cfg.path(s.model)) if s.model else None)


def _semantic(work: Path, col: Collector, cfg: Config, encoder, progress):
    """The semantic step (semantic_step.py); the rows it flags get its drop's code in the filter column."""
    from sftflow.data import semantic_step

    sem = semantic_step.run(work / "spool.jsonl", col.store, cfg.data.semantic, encoder, progress)
    if sem.flagged:
        codes = col.store.read("filter", 0, len(col.store))  # 4 bytes a record
        for r, (code, detail) in sem.flagged.items():
            codes[r] = col.drop_code(Drop(code, reason=code, detail=detail))
        col.store.add_column("filter", np.int32, [codes])
    return sem


def _semantic_stats(work: Path, sem, fate: Fates, cfg: Config) -> dict:
    """What stats.json and the data card show of the semantic step: counts, and the first clusters and
    flagged rows with their fates (read from the spool before pass 2 removes it)."""
    from sftflow.data.semantic_step import read_records, shown_rows, texts

    shown = shown_rows(sem)
    records = read_records(work / "spool.jsonl", {r for rows in (*shown["clusters"], *shown["flagged"]) for r in rows})

    def member(r: int) -> dict:
        rec, at = records[r], int(np.searchsorted(fate.rows, r))
        state = fate.state[at] if at < len(fate.rows) and fate.rows[at] == r else FILTERED if r in sem.flagged else KEPT
        prompt, answer, _ = texts(rec)
        reason, detail = sem.flagged.get(r, ("", ""))
        return {"id": rec["id"], "where": f"{rec['source']['file']}:{rec['source']['line']}",
                "score": round(rec["quality"]["score"], 3), "fate": ("kept", "duplicate", "filtered", "unused")[state],
                "reason": reason, "detail": detail, "prompt": prompt[:200], "answer": answer[:200]}

    s = cfg.data.semantic
    return {"model": s.model or "all-MiniLM-L6-v2", "embedded": sem.embedded, "seconds": round(sem.seconds, 2),
            "settings": s.model_dump(exclude={"enabled", "model"}), **sem.counts,
            "duplicates": int(fate.semantic.sum()),
            "clusters_shown": [[member(r) for r in rows] for rows in shown["clusters"]],
            "flagged_shown": [member(r) for [r] in shown["flagged"]]}


def _sources(cfg: Config) -> Iterator[tuple[SourceSpec, Path]]:
    """(how to read it, path) for every input file, each file once however many entries name it."""
    seen: set[str] = set()
    for spec, path in _listed_sources(cfg):
        real = path.key if isinstance(path, DatasetPart) else os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            yield spec, path


def _check_output_outside(cfg: Config, pattern: str, files: list[Path]) -> None:
    """prepare must never read its own outputs (a re-run would read them as more rows)."""
    out = cfg.data_dir.resolve()
    globbed = any(ch in pattern for ch in "*?[")
    base = Path(re.split(r"[*?[]", pattern)[0] or ".") if globbed else Path(pattern)
    base = (base if base.is_absolute() else cfg.root / base).resolve()
    folder = base.is_dir() if not globbed else True  # a file named on its own reads nothing else
    recursive = "**" in pattern or not globbed
    if (folder and (out == base or (recursive and base in out.parents))
            or any(out in Path(os.path.realpath(f)).parents for f in files)):
        raise SftflowError(f"data.output_dir {cfg.data.output_dir!r} is inside the source {pattern!r}: prepare would "
                           "read its own outputs on the next run; put the outputs or the raw files in another folder")


def _listed_sources(cfg: Config) -> Iterator[tuple[SourceSpec, Path | DatasetPart]]:
    listed = set()
    for i, source in enumerate(cfg.data.sources):
        parts = dataset_parts(source, cfg.root, i)  # a hub id or a save_to_disk folder: one part per split
        if parts is not None:
            for part in parts:
                yield SourceSpec(part.display, source.format, source.mapping, source.origin, source=i), part
            continue
        files = resolve_sources(source.path, cfg.root)
        _check_output_outside(cfg, source.path, files)
        for path in files:
            listed.add(path.resolve())
            yield SourceSpec(display_path(path, cfg.root), source.format, source.mapping, source.origin, source=i), path
    synth = cfg.data.synth
    output = cfg.path(synth.output)
    if synth.include and output.is_file() and output.resolve() not in listed:  # `sftflow synth` candidates
        yield SourceSpec(display_path(output, cfg.root), "messages", {}, "synthetic"), output
    if cfg.data.mix:
        m = cfg.data.mix
        for path in resolve_sources(m.path, cfg.root):
            yield SourceSpec(display_path(path, cfg.root), m.format, {}, "general-mix", mix=True), path


def _pool(workers: int, settings: RowSettings):
    if workers <= 1:
        return None
    import multiprocessing as mp

    return mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(settings,))


_WORKER: RowProcessor | None = None


def _init_worker(settings: RowSettings) -> None:
    global _WORKER
    _WORKER = RowProcessor(settings)


def _work(args) -> Chunk:
    raws, src = args
    return _WORKER.process(raws, src)


def _stream_chunks(sources: list, processor: RowProcessor, pool, accounts: dict, bad_csv: str = "reject",
                   caps: dict | None = None) -> Iterator[tuple[Chunk | Capped, SourceSpec]]:
    """Chunks of processed rows in input order; each file's ReadAccount lands in `accounts`. With
    `caps` (data.sources entry → max_rows), a source's rows past its first max_rows come as `Capped`."""
    caps, taken = caps or {}, Counter()
    for src, path in sources:
        account = accounts[src.file] = (path, ReadAccount())
        rows = read_part(path, account[1]) if isinstance(path, DatasetPart) else read_rows(path, account[1], bad_csv)
        room = caps[src.source] - taken[src.source] if src.source in caps else None
        head = rows if room is None else islice(rows, max(0, room))  # leaves the rest of `rows` unread
        jobs = ((raws, src) for raws in _chunks(head, CHUNK))
        if pool is None:
            for raws, s in jobs:
                yield processor.process(raws, s), src
        else:
            for chunk in pool.imap(_work, jobs):  # imap keeps input order: same result as one process
                yield chunk, src
        taken[src.source] += account[1].rows
        if room is not None:
            for over in _chunks(rows, CHUNK):
                yield Capped(over), src


def prepare(cfg: Config, log=print, workers: int = 1) -> dict:
    """The data stage under the data folder's lock; its outputs appear all together or not at all."""
    from sftflow.lock import hold

    data_dir = cfg.data_dir
    with hold(data_dir, "prepare"):
        finish_interrupted_publish(data_dir, log)
        work = Path(tempfile.mkdtemp(prefix=".prepare-", dir=data_dir))
        try:
            stats = _prepare(cfg, work, log, workers)
            publish(work, data_dir)
        except (OSError, sqlite3.OperationalError) as err:
            if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in str(err):
                raise SftflowError(f"prepare: no space left on the device while writing {data_dir}; the previous "
                                   "outputs there are intact — free some space and re-run") from err
            raise
        finally:
            if not (data_dir / PUBLISHING).exists():  # else the next prepare finishes publishing from it
                shutil.rmtree(work, ignore_errors=True)
    return stats


def _reconcile(accounts: dict, col: Collector) -> None:
    """Every file's rows against its lines counted on their own (load.check_account), and the rows
    the readers yielded against the rows given a fate: a difference stops prepare, never exit 0."""
    for display, (path, account) in accounts.items():
        check_account(path, display, account)
        got = col.per_file[display]["read"]
        if got != account.rows:
            raise SftflowError(f"{display}: {account.rows} rows read but {got} given a fate — please report this")


def _no_usable_examples(work: Path, data_dir: Path, col: Collector, totals: dict, filter_codes: np.ndarray,
                        log) -> None:
    """Stop, but with every reason at once: the rejects file is kept and its reasons are listed by
    count, so a user fixes all the problems in one pass. A previous prepare's outputs stay as they
    were; its rejects.jsonl too (this run's then go to rejects.failed.jsonl)."""
    name = "rejects.failed.jsonl" if (data_dir / "train.jsonl").exists() else "rejects.jsonl"
    if totals["rejected"]:
        os.replace(work / "rejects.jsonl", data_dir / name)
    for reason, k in col.reject_reasons.most_common(8):
        log(f"  rejected {k:>6}: {reason}")
    for reason, k in _filter_kinds(col.drops, filter_codes).most_common(8):
        log(f"  filtered {k:>6}: {reason}")
    where = f"; every reason is in {data_dir / name}" if totals["rejected"] else ""
    raise SftflowError(f"no usable examples in data.sources ({col.rows_read} rows read, {totals['rejected']} "
                       f"rejected, {totals['filtered']} filtered){where}")


def _prepare(cfg: Config, work: Path, log, workers: int) -> dict:
    """The data stage in `work`: read and score, decide, write, check for leaks, then account for it all."""
    sources = list(_sources(cfg))  # a missing file fails now, before any work
    clock = {"start": time.perf_counter()}
    settings, length_check, processor = _settings(cfg, log)
    template_default = _template_default(processor)
    encoder = _semantic_encoder(cfg)  # a missing extra fails now, before any work
    processor = processor or RowProcessor(settings)
    col = Collector(work, cfg)
    judge = _judge(cfg, log)
    agreement = _read_pass(cfg, sources, processor, col, judge, workers)
    clock["read_score_hash"] = time.perf_counter()
    sem = None
    if encoder is not None:
        with phase("prepare: semantic signals (sentence embeddings)", total=col.rows_read) as update:
            sem = _semantic(work, col, cfg, encoder, update)
        clock["semantic"] = time.perf_counter()
    with phase("prepare: duplicates, conflicts and splits"):
        file_source = np.array([col.source_of.get(f, -1) for f in col.files], dtype=np.int64)
        fate = decide(col.store, col.strata, col.near_whole, col.near_prompt, cfg, file_source,
                      None if sem is None else sem.edges)
    sem_stats = None if sem is None else _semantic_stats(work, sem, fate, cfg)
    clock["dedup_split_decisions"] = time.perf_counter()
    with phase("prepare: writing train/val/test and the ledger", total=col.rows_read) as update:
        tally = _write_splits(work, col, fate, update)
    counts, totals = _account(col, tally)
    task_kept = totals["kept"] - tally.mix_in_train
    if task_kept == 0:
        _no_usable_examples(work, cfg.data_dir, col, totals, tally.filter_codes, log)
    clock["write_splits"] = time.perf_counter()
    leakage = _leakage(work, counts)  # pass 3
    clock["leakage_report"] = time.perf_counter()
    warns = _warnings(fate, col, counts, task_kept, judge)
    col.ledger.carry_runs_from(cfg.data_dir / "ledger.sqlite")
    col.ledger.close()
    stats = {
        "rows_read": col.rows_read,
        **totals,
        **_stats(cfg, col, tally, fate, judge, agreement, sem_stats),
        "length_check": length_check,
        "template_date": _template_date(processor),
        "template_default_system": template_default,
        "truncated": tally.truncated_kept,
        "leakage": leakage,
        "warnings": warns,
        "seconds": {k: round(v - prev, 2) for (k, v), prev in zip(list(clock.items())[1:], clock.values(),
                                                                    strict=False)},
        "seed": cfg.data.seed,
        "fractions": cfg.data.split.model_dump(),
        "stratify_field": cfg.data.stratify_field,
        "group_field": cfg.data.group_field,
    }
    write_json(work / "stats.json", stats)
    write_data_card(work, stats)
    _log_summary(cfg, col, tally, stats, sem_stats, time.perf_counter() - clock["start"], log)
    return stats


def _read_pass(cfg: Config, sources: list, processor: RowProcessor, col: Collector, judge, workers: int) -> dict | None:
    """Pass 1: every source row converted, scored and filtered (in worker processes with `workers` > 1),
    judged, and collected in input order; each file's rows reconciled with its lines. Returns the
    judge's agreement with human review, if any."""
    pool = _pool(workers, processor.s)
    agreement = None
    accounts: dict[str, tuple[Path, ReadAccount]] = {}
    try:
        with phase(f"prepare: reading, converting and scoring {len(sources)} file(s)", unit="rows") as update:
            caps = {i: s.max_rows for i, s in enumerate(cfg.data.sources) if s.max_rows is not None}
            for chunk, src in _stream_chunks(sources, processor, pool, accounts, cfg.data.bad_csv, caps):
                if isinstance(chunk, Capped):
                    col.add_capped(chunk.rows, src, caps[src.source])
                else:
                    if judge is not None and not src.mix:  # in the main process: one cache, one request budget
                        judge.apply(chunk.rows, processor.s.threshold if processor.s.quality else None)
                    col.add(chunk, src)
                update(col.rows_read)
        if judge is not None:
            agreement = judge.human_agreement()
    finally:
        if pool is not None:
            pool.terminate()
        if judge is not None:
            judge.close()
    col.spool.close()
    col.rejects.close()
    _reconcile(accounts, col)
    col.store.close()
    return agreement


def _account(col: Collector, tally: Tally) -> tuple[dict, dict]:
    """(kept per split, rows per fate); the fates must sum to the rows read, the promise of this stage."""
    counts = {name: int(tally.splits[k]) for k, name in enumerate(SPLITS)}
    totals = {
        "kept": int(tally.states[KEPT]),
        "rejected": sum(v["rejected"] for v in col.per_file.values()),
        "duplicates": int(tally.states[DUPLICATE]),
        "filtered": int(tally.states[FILTERED]),
        "unused": int(tally.states[UNUSED]) + col.capped,
    }
    if sum(totals.values()) != col.rows_read:  # never silently lose a row
        raise RuntimeError(f"row accounting broken: {totals} does not sum to {col.rows_read} rows read")
    return counts, totals


def _leakage(work: Path, counts: dict) -> dict:
    """Pass 3: val/test against train; an exact shared prompt stops prepare (it cannot happen by design)."""
    with phase("prepare: leakage report (val/test against train)"):
        leakage = leakage_report(work, counts["train"], counts["val"] + counts["test"])
    if leakage["exact_prompt_leaks"]:
        raise SftflowError(f"{leakage['exact_prompt_leaks']} val/test prompts also appear in train: "
                           "this should be impossible; please report it with your config")
    return leakage


def _warnings(fate: Fates, col: Collector, counts: dict, task_kept: int, judge) -> list[str]:
    """What the decisions, the census and the judge warn about; each one is also raised as a SftflowWarning."""
    warns = fate.warnings + _census_warnings(col, counts, task_kept)
    if judge is not None and (judge.counts["failed"] or judge.counts["budget"]):
        warns.append(f"data.quality.judge: {judge.counts['failed'] + judge.counts['budget']} examples not judged "
                     f"({judge.last_error}); they keep their rule score; re-run prepare to judge them")
    for w in warns:
        warnings.warn(w, SftflowWarning, stacklevel=3)
    return warns


def _stats(cfg: Config, col: Collector, tally: Tally, fate: Fates, judge, agreement: dict | None,
           sem_stats: dict | None) -> dict:
    """stats.json's account of duplicates, splits, mix, origins, sources, rejects, filters and conflicts."""
    return {
        "near_duplicates": tally.near_duplicates,
        "exact_duplicates": int(tally.states[DUPLICATE]) - tally.near_duplicates,
        "splits": {name: int(tally.splits[k]) for k, name in enumerate(SPLITS)},
        "general_mix_in_train": tally.mix_in_train,
        "synthetic": {**fate.synthetic, "by_split": {name: int(tally.synthetic[k]) for k, name in enumerate(SPLITS)},
                      "max_train_share": cfg.data.synth.max_train_share, "in_test": cfg.data.synth.in_test,
                      "teachers": dict(col.teachers.most_common()), "templates": dict(col.templates.most_common())},
        "judge": None if judge is None else {**judge.stats(), "agreement": agreement},
        "origins": {f"{SPLITS[k]}:{col.origins[o]}": v for (k, o), v in tally.origins.items()},
        "formats": {f: dict(v) for f, v in col.formats.items()},
        "files": {f: dict(v) for f, v in col.per_file.items()},
        "licenses": {s.path: s.license for s in cfg.data.sources if s.license},
        "sources": _source_counts(cfg, col),
        "reject_reasons": dict(col.reject_reasons.most_common()),
        "pii": {"mode": cfg.data.quality.pii, "rows": col.pii_rows, "kinds": dict(col.pii_kinds.most_common()),
                "kept": tally.pii_kept},
        "filter_reasons": dict(_filter_kinds(col.drops, tally.filter_codes).most_common()),
        "quality": {"threshold": cfg.data.quality.threshold if cfg.data.quality.enabled else None,
                    "histogram": tally.score_histogram.tolist(),
                    "lowest": [{"score": round(s, 3), "id": i, "where": w, "reasons": r, "answer": a}
                               for s, i, w, r, a in col.lowest],
                    "lowest_kept": [{"score": round(s, 3), "id": i, "where": w, "reasons": r, "answer": a}
                                    for s, i, w, r, a in tally.lowest]},
        **({} if sem_stats is None else {"semantic": sem_stats}),
        "conflicts": {"policy": cfg.data.conflicts, "groups": len(tally.conflict_groups), "rows": tally.conflict_rows,
                      "unused": sum(1 for why in fate.why_unused.values() if why.startswith("conflicting labels")),
                      "shown": list(tally.conflicts.values())},
        "system_prompts": {"distinct": len(col.systems), "beyond_cap": col.systems_beyond_cap,
                           "top": [[col.system_text.get(k, "")[:200], v] for k, v in col.systems.most_common(3)]},
    }


def _log_summary(cfg: Config, col: Collector, tally: Tally, stats: dict, sem_stats: dict | None, seconds: float,
                 log) -> None:
    """The prepare log's closing lines: fates, conflicts, semantic signals, speed, per-file table, PII, judge."""
    counts = stats["splits"]
    log(f"prepare: {col.rows_read} rows read → {stats['kept']} kept, {stats['rejected']} rejected, "
        f"{stats['duplicates']} duplicates ({tally.near_duplicates} near), {stats['filtered']} filtered"
        + (f", {stats['unused']} unused (general mix / synthetic rules / conflicting labels / source weights and "
           "max_rows)" if stats["unused"] else "")
        + f"; train/val/test = {counts['train']}/{counts['val']}/{counts['test']} → {cfg.data_dir}")
    if tally.conflict_groups:  # reported, not warned: a few in thousands of rows is ordinary in real data
        log(f"  conflicting labels: {len(tally.conflict_groups)} prompts with different answers "
            f"({tally.conflict_rows} examples, data.conflicts: {cfg.data.conflicts}; see data_card.md)")
    if sem_stats is not None:
        log(f"  semantic signals: {sem_stats['embedded']} examples embedded in {sem_stats['seconds']:.0f} s; "
            f"filtered {sem_stats['unrelated_answer']} unrelated answers and {sem_stats['semantic_outlier']} outliers, "
            f"{sem_stats['duplicates']} semantic duplicates (see data_card.md)")
    log(f"  {seconds:.1f} s, {col.rows_read / max(seconds, 1e-9):,.0f} rows/s")
    _log_table(stats, log)
    if stats["pii"]["rows"]:
        pii = stats["pii"]
        done = {"redact": "redacted", "drop": "filtered"}.get(pii["mode"], "flagged, kept as written")
        log(f"  personal data in {pii['rows']} rows ({', '.join(f'{k} {v}' for k, v in pii['kinds'].items())}): {done}")
    if stats["judge"]:
        log("  " + judge_line(stats["judge"]))


@dataclass
class Tally:
    """What pass 2 counts as it streams by, for stats.json (no per-record array is kept)."""

    filter_codes: np.ndarray  # records per filter reason code
    states: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))  # by KEPT, DUPLICATE, ...
    splits: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))  # kept, by split
    synthetic: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))  # kept synthetic, by split
    score_histogram: np.ndarray = field(default_factory=lambda: np.zeros(10, dtype=np.int64))  # task records
    origins: Counter = field(default_factory=Counter)  # (split, origin code) → kept
    near_duplicates: int = 0
    lowest: list = field(default_factory=list)  # the lowest-scored kept task examples (score, id, where, answer)
    conflicts: dict = field(default_factory=dict)  # shown conflict group → its members
    conflict_rows: int = 0
    conflict_groups: set = field(default_factory=set)
    mix_in_train: int = 0
    pii_kept: int = 0
    truncated_kept: int = 0

    def lowest_kept(self, score: float, rid: str, where: str, line: str) -> None:
        if score < 1.0 and (len(self.lowest) < LOWEST_SHOWN or score < self.lowest[-1][0]):
            rec = json.loads(line)
            self.lowest.append((score, rid, where, rec["quality"]["reasons"], _answer(rec)[:300]))
            self.lowest.sort(key=lambda x: x[0])
            del self.lowest[LOWEST_SHOWN:]

    def conflict(self, group: int, shown: set, rid: str, where: str, state: int, b: dict, j: int, line: str,
                 ledger: Ledger) -> None:
        """A member of a conflict group: its ledger line, counted, and kept for the card if shown."""
        self.conflict_rows += 1
        self.conflict_groups.add(group)
        file, lineno = where.rsplit(":", 1)
        ledger.decide(rid, file, int(lineno), "conflicts", "conflict", f"group {group}: one prompt, different answers")
        if group in shown:
            rec = json.loads(line)
            member = {"id": rid, "where": where, "origin": rec["source"]["origin"], "score": round(float(b["score"][j]), 3),
                      "fate": ("kept", "duplicate", "filtered", "unused")[state], "answer": _answer(rec)[:300]}
            asked = Example.of(rec).prompt  # the turn before the answer: the question, or a tool's result
            prompt = "\n".join(asked[-1].texts()) if asked else ""
            self.conflicts.setdefault(group, {"prompt": prompt[:300], "members": []})["members"].append(member)

    def add(self, state: np.ndarray, split: np.ndarray, near: np.ndarray, b: dict[str, np.ndarray]) -> None:
        kept = state == KEPT
        self.states += np.bincount(state, minlength=4)
        self.splits += np.bincount(split[kept], minlength=3)
        self.synthetic += np.bincount(split[kept & b["synthetic"]], minlength=3)
        self.score_histogram += np.histogram(b["score"][~b["mix"]], bins=10, range=(0, 1))[0]
        self.filter_codes += np.bincount(b["filter"], minlength=len(self.filter_codes))
        keys, counts = np.unique(split[kept].astype(np.int64) * 256 + b["origin"][kept], return_counts=True)
        self.origins.update({(int(k) // 256, int(k) % 256): int(v) for k, v in zip(keys, counts, strict=True)})
        self.near_duplicates += int((near & (state == DUPLICATE)).sum())
        self.mix_in_train += int((kept & b["mix"]).sum())
        self.pii_kept += int((kept & b["pii"]).sum())
        self.truncated_kept += int((kept & b["truncated"]).sum())


def _write_splits(work: Path, col: Collector, fate: Fates, progress=lambda done: None) -> Tally:
    """Pass 2: stream the spool into train/val/test.jsonl with a decision per record in the ledger,
    a block of records at a time; write the prompt keys of train and of val/test for the leakage
    report; count what stats.json reports."""
    tally = Tally(filter_codes=np.zeros(len(col.drops), dtype=np.int64))
    outs = {name: open(work / f"{name}.jsonl", "w", encoding="utf-8") for name in SPLITS}  # noqa: SIM115
    prompts = {k: open(work / f"prompts.{k}.u64", "wb") for k in ("train", "eval")}  # noqa: SIM115
    names = ("id", "file", "line", "filter", "score", "truncated", "tokens", "mix", "synthetic", "pii", "origin",
             "prompt", "split", "reasons")
    shown = set(np.unique(fate.conflict[fate.conflict >= 0])[:SHOWN_GROUPS].tolist())
    with open(work / "spool.jsonl", encoding="utf-8") as spool:
        for start, b in col.store.blocks(*names, size=WRITE_BLOCK):
            state, split, near = _write_block(start, b, spool, col, fate, tally, outs, shown)
            tally.add(state, split, near, b)
            progress(start + len(state))
            kept = state == KEPT
            prompts["train"].write(b["prompt"][kept & (split == 0)].tobytes())
            prompts["eval"].write(b["prompt"][kept & (split > 0) & ~b["mix"]].tobytes())
        if spool.readline():
            raise RuntimeError(f"the spool holds more records than the key columns ({len(col.store)})")
    for f in (*outs.values(), *prompts.values()):
        f.close()
    (work / "spool.jsonl").unlink()
    return tally


def _write_block(start: int, b: dict[str, np.ndarray], spool, col: Collector, fate: Fates, tally: Tally,
                 outs: dict, shown: set) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One block of records: each record's decision in the ledger and its file's counts, kept records
    into their split's file. Returns the block's (state, split, near) for the tally."""
    ledger, files = col.ledger, col.files
    state, split, keeper, near = fate.block(start, b["filter"], b["split"])
    by_embedding = fate.semantic_in(start, len(state))
    conflict = fate.conflicts_in(start, len(state))
    # the spool last: zip stops at the end of the block before it reads a line of the next one
    rows = zip(b["id"].tolist(), b["file"].tolist(), b["line"].tolist(), state.tolist(), split.tolist(), spool,
               strict=False)
    j = -1
    for j, (rid, file_code, lineno, s, k, line) in enumerate(rows):
        rid, file = f"{rid:016x}", files[file_code]
        counts = col.per_file[file]
        score = f"score {b['score'][j]:.3f}" + (f": {q}" if (q := col.quality_reasons[b["reasons"][j]]) else "")
        if conflict[j] >= 0:
            tally.conflict(int(conflict[j]), shown, rid, f"{file}:{lineno}", s, b, j, line, ledger)
        if s == FILTERED:
            drop = col.drops[b["filter"][j]]
            ledger.decide(rid, file, lineno, "prepare", "filtered", drop.reason,
                          f"score {b['score'][j]:.3f}" + (f"; {drop.detail}" if drop.detail else ""))
            counts["filtered"] += 1
        elif s == DUPLICATE:
            kid, kfile, kline = fate.keeper_where(keeper[j])
            how = "semantic" if by_embedding[j] else "near" if near[j] else "exact"
            ledger.decide(rid, file, lineno, "prepare", "duplicate", f"{how} duplicate of {kid} ({files[kfile]}:{kline})",
                          score)
            counts["duplicates"] += 1
        elif s == UNUSED:
            why = fate.why(start + j)
            ledger.decide(rid, file, lineno, "prepare", "unused", why, score)
            counts["unused"] += 1
            counts[SOURCE_WEIGHT] += why == SOURCE_WEIGHT
        else:
            truncated = bool(b["truncated"][j])
            ledger.decide(rid, file, lineno, "prepare", "kept", "truncated" if truncated else "",
                          (f"{score}; {b['tokens'][j]} tokens" if truncated else score) + _tools_note(line))
            if not b["mix"][j]:
                tally.lowest_kept(float(b["score"][j]), rid, f"{file}:{lineno}", line)
            ledger.decide(rid, file, lineno, "split", SPLITS[k])
            outs[SPLITS[k]].write(line)
            counts["kept"] += 1
            counts["train"] += k == 0
    if j != len(state) - 1:
        raise RuntimeError(f"spool and key columns disagree at record {start + j}")
    return state, split, near


def _source_counts(cfg: Config, col: Collector) -> list[dict]:
    """Per data.sources entry, for the data card: rows read, kept (any split), used in train, left
    unused by max_rows and by weight, and its share of the training rows from data.sources."""
    out = [{"path": s.path, "weight": s.weight, "max_rows": s.max_rows, "read": 0, "kept": 0, "train": 0,
            SOURCE_MAX_ROWS: 0, SOURCE_WEIGHT: 0} for s in cfg.data.sources]
    for file, counts in col.per_file.items():
        k = col.source_of.get(file, -1)
        if k >= 0:
            for name in ("read", "kept", "train", SOURCE_MAX_ROWS, SOURCE_WEIGHT):
                out[k][name] += counts.get(name, 0)
    train = sum(o["train"] for o in out)
    total = sum(s.weight or 0 for s in cfg.data.sources)
    for o in out:
        o["share"] = o["train"] / train if train else 0.0
        o["target_share"] = o["weight"] / total if o["weight"] else None
    return out


def _answer(rec: dict) -> str:
    return Example.of(rec).answer_text


def _tools_note(line: str) -> str:
    """For the ledger's `kept` line of an example with tools: the tools it declares and the calls it trains."""
    if '"tools"' not in line:  # the record's JSON text: most examples have no tools, and are not parsed again
        return ""
    ex = Example.of(json.loads(line))
    if not ex.tools:
        return ""
    calls = Counter(c.name for m in ex.messages for c in m.tool_calls)
    return (f"; tools: {', '.join(t.name for t in ex.tools)}; calls: "
            + (", ".join(f"{n} ×{k}" for n, k in sorted(calls.items())) or "none"))


def _filter_kinds(drops: list[Drop | None], counts: np.ndarray) -> Counter:
    """Filtered records by the kind each drop is counted as (a low_quality drop by the quality rules
    it tripped, others by their code), from the count of records per "filter" column code."""
    kinds: Counter = Counter()
    for code in np.flatnonzero(counts[1:]) + 1:
        kinds[drops[code].kind] += int(counts[code])
    return kinds


def judge_line(j: dict) -> str:
    """One line on what the LLM judge did, for the prepare log."""
    means = ", ".join(f"{k} {v:.2f}" for k, v in j["means"].items())
    line = (f"judge {j['model']}: {j['scored']} scored ({j['cached']} cache hits), {j['filtered']} filtered, "
            f"{j['malformed']} malformed replies" + (f"; means {means}" if means else ""))
    a = j.get("agreement")
    if a and a["pairs"]:
        kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.2f}"
        line += (f"; vs human correctness on {a['pairs']} rated outputs: exact {a['exact']:.0%}, "
                 f"within one {a['within_one']:.0%}, kappa {kappa}")
    return line


def leakage_report(work: Path, n_train: int, n_eval: int) -> dict:
    """Val/test against train: exact shared prompts (must be 0) and shared word 13-grams (reported).

    Prompt keys, and the n-gram hashes of both sides (written to files first), are compared a
    hash range at a time, so memory stays bounded however large the splits are. The examples
    are the first train rows (in train.jsonl order) that share an n-gram with val/test, each with
    the first val/test example (val.jsonl, then test.jsonl) it shares one with."""
    exact = _keys_in_both(work / "prompts.eval.u64", work / "prompts.train.u64")
    train, evals = work / "ngrams.train.bin", work / "ngrams.eval.bin"
    _write_ngrams([work / "train.jsonl"], train)
    _write_ngrams([work / "val.jsonl", work / "test.jsonl"], evals)
    train_hit = np.zeros(n_train, dtype=bool)
    eval_hit = np.zeros(n_eval, dtype=bool)
    ranges = key_ranges((train.stat().st_size + evals.stat().st_size) // NGRAM_RECORD.itemsize, NGRAM_RANGE)
    first: dict[int, int] = {}  # the first train rows with a hit so far → their first val/test row
    for lo, hi in ranges:
        rows, owners = _shared_ngrams(train, evals, lo, hi)
        train_hit[rows] = True
        eval_hit[owners] = True
        # A row among the first 5 at the end is among the first 5 so far whenever it has a hit,
        # so keeping only those loses none of its hits.
        for r in np.unique(rows)[:5].tolist():
            first[r] = min(first.get(r, n_eval), int(owners[rows == r].min()))
        first = dict(sorted(first.items())[:5])
    train.unlink()
    evals.unlink()
    train_ids = _ids_at([work / "train.jsonl"], list(first))
    eval_ids = _ids_at([work / "val.jsonl", work / "test.jsonl"], list(first.values()))
    return {"exact_prompt_leaks": exact, "ngram": NGRAM, "train_with_shared_ngram": int(train_hit.sum()),
            "eval_with_shared_ngram": int(eval_hit.sum()), "eval_examples": n_eval,
            "examples": [{"train": t, "eval": e} for t, e in zip(train_ids, eval_ids, strict=True)]}


NGRAM_RECORD = np.dtype([("hash", "<u8"), ("row", "<i4")])


def _write_ngrams(split_files: list[Path], out: Path) -> None:
    """(n-gram hash, row) of every word 13-gram of every example in the split files, rows
    numbered across the files in order."""
    hashes: list[int] = []
    rows: list[int] = []
    j = 0
    with open(out, "wb") as o:
        for path in split_files:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    h = ngram_hashes(dedup_texts(json.loads(line))[0])
                    hashes += h
                    rows += [j] * len(h)
                    j += 1
                    if len(hashes) >= 100_000:
                        o.write(_ngram_records(hashes, rows))
                        hashes, rows = [], []
        o.write(_ngram_records(hashes, rows))


def _ngram_records(hashes: list[int], rows: list[int]) -> bytes:
    out = np.empty(len(hashes), dtype=NGRAM_RECORD)
    out["hash"] = np.array(hashes, dtype=np.int64).view(np.uint64)  # Python's hashes are signed
    out["row"] = rows
    return out.tobytes()


def _ngrams_in_range(path: Path, lo: np.uint64, hi: np.uint64):
    """(hashes, rows) of the n-grams in a file whose hash is in [lo, hi]."""
    records = keys_in_range(file_blocks(path, NGRAM_RECORD), lo, hi, field="hash")[0]
    if not len(records):
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32)
    return records["hash"], records["row"]


def _shared_ngrams(train: Path, evals: Path, lo: np.uint64, hi: np.uint64):
    """(train row, eval row) for every n-gram with a hash in [lo, hi] that both sides have."""
    index = NgramIndex.of_hashes(*_ngrams_in_range(evals, lo, hi))
    return index.matches(*_ngrams_in_range(train, lo, hi))


def _ids_at(split_files: list[Path], rows: list[int]) -> list[str]:
    """The ids of the examples at these rows of the split files (numbered across them in order)."""
    want, found, j = set(rows), {}, 0
    for path in split_files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if j in want:
                    found[j] = json.loads(line)["id"]
                j += 1
                if len(found) == len(want):
                    return [found[r] for r in rows]
    return [found[r] for r in rows]


def _keys_in_both(probe: Path, among: Path) -> int:
    """How many keys of the file `probe` also appear in the file `among` (flat uint64 files),
    compared a key range at a time."""
    count = 0
    n = (probe.stat().st_size + among.stat().st_size) // 8
    for lo, hi in key_ranges(n):
        seen = np.unique(keys_in_range(file_blocks(among, np.uint64), lo, hi)[0])
        count += int(np.isin(keys_in_range(file_blocks(probe, np.uint64), lo, hi)[0], seen).sum())
    return count


def _census_warnings(col: Collector, counts: dict, task_kept: int) -> list[str]:
    out = []
    for file, fmts in col.formats.items():
        if len(fmts) > 1:
            mixed = ", ".join(f"{k} {v}" for k, v in fmts.most_common())
            out.append(f"{file} mixes row formats ({mixed}); all are converted to one chat template, "
                       "but check that this is intended")
    total = sum(col.systems.values()) + col.systems_beyond_cap
    if total and len(col.systems) > 1:
        top_key, top = col.systems.most_common(1)[0]
        none_count = col.systems.get(hash64(""), 0)
        if 0 < none_count < total:
            out.append(f"{none_count} of {total} examples have no system prompt and the rest do; "
                       "set data.system_prompt to give every example the same one")
        if len(col.systems) > 10 and top / total < 0.5:
            out.append(f"system prompts vary widely: {len(col.systems)} distinct, the most common covers only "
                       f"{top / total:.0%} (e.g. {col.system_text.get(top_key, '')[:60]!r})")
    if counts["test"] < MIN_TEST_EXAMPLES:
        out.append(f"the test split has only {counts['test']} examples (< {MIN_TEST_EXAMPLES}): "
                   "test metrics will be noise; add data or raise data.split.test")
    if task_kept < PLAYBOOK_MIN_EXAMPLES:
        out.append(f"only {task_kept} usable examples; practice suggests starting from ~{PLAYBOOK_MIN_EXAMPLES} "
                   "quality pairs")
    return out


def _log_table(stats: dict, log) -> None:
    rows = [("file", "read", "kept", "rejected", "duplicates", "filtered")]
    for f, v in stats["files"].items():
        rows.append((f, *(str(v.get(k, 0)) for k in ("read", "kept", "rejected", "duplicates", "filtered"))))
    width = max(len(r[0]) for r in rows)
    for r in rows:
        log("  " + r[0].ljust(width) + "".join(x.rjust(11) for x in r[1:]))
    for reason, k in list(stats["reject_reasons"].items())[:8]:
        log(f"  rejected {k:>6}: {reason}")
    for reason, k in list(stats["filter_reasons"].items())[:8]:
        log(f"  filtered {k:>6}: {reason}")
