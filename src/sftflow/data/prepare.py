"""The data stage: raw files → canonical, scored, deduplicated, split examples with a full account.

    sftflow prepare sftflow.yaml [--show 3] [--workers 2]

Every input row ends in exactly one fate: kept (in train, val or test), rejected (with file,
line, field and reason, in rejects.jsonl), duplicate (of the kept example's id), filtered
(low quality or contaminated, with score and reasons), or unused (general mix-in data beyond
the mix ratio; synthetic rows over data.synth.max_train_share or in a group with human test
rows; rows past a source's max_rows, or training rows beyond its weight). `kept + rejected + duplicates + filtered + unused == rows read` is checked before
anything is published. With data.quality.judge, an LLM judge's verdict joins the rule score
(signals/judge.py); `sftflow synth` candidates are read as one more source (origin synthetic).

Three passes keep memory flat in the size of the input: (1) stream the sources in chunks,
convert and score rows, write records to a spool file and their keys (hashes, score, flags,
MinHash signatures and band hashes) to column files on disk; (2) find equal keys a key range
at a time, decide the records that have something in common with another (duplicates, shared
prompts or groups, mix-in and synthetic rows: decide/rules.py) together and every other one from its
own key, and stream the spool into train/val/test.jsonl a block at a time; (3) check val/test
against train for leaks a hash range at a time. What grows with the input is the records with
something in common (about 70 bytes each at the peak) and, with data.stratify_field, all
records (every group is ranked within its label).
Outputs are written to a temporary folder and moved into place at the end, so an
interrupted prepare leaves the previous outputs intact.

`_prepare` below is the list of the steps (step.py): each is built from its own settings and
counts what it did. signals/ computes what each record is (convert, score, keys, judge,
embeddings), decide/ gives each its fate, account/ writes and records it.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from sftflow.config import Config
from sftflow.config.data import DataConfig
from sftflow.data.account.card import write_data_card
from sftflow.data.account.collect import SPOOL, Collector
from sftflow.data.account.leakage import Leakage
from sftflow.data.account.stats import decision_stats, fate_totals, filter_kinds, step_counts, warn
from sftflow.data.account.summary import log_summary
from sftflow.data.account.write import Tally, WriteSplits
from sftflow.data.decide.rules import Decide
from sftflow.data.signals.judge import Judge
from sftflow.data.signals.semantic import Semantic
from sftflow.data.signals.setup import RowSetup
from sftflow.data.signals.stream import ReadAndScore
from sftflow.data.sizes import SIZES, Sizes
from sftflow.data.sources import list_sources
from sftflow.data_folder import (
    LEDGER,
    PUBLISHING,
    REJECTS,
    REJECTS_FAILED,
    STATS,
    TRAIN,
    finish_interrupted_publish,
    publish,
)
from sftflow.errors import SftflowError
from sftflow.io import write_json


def prepare(cfg: Config, log=print, workers: int = 1, sizes: Sizes = SIZES) -> dict:
    """The data stage under the data folder's lock; its outputs appear all together or not at all.
    `sizes`: how much the steps handle at once (data/sizes.py; the outputs do not depend on them)."""
    from sftflow.lock import hold

    data_dir = cfg.data_dir
    with hold(data_dir, "prepare"):
        finish_interrupted_publish(data_dir, log)
        work = Path(tempfile.mkdtemp(prefix=".prepare-", dir=data_dir))
        try:
            stats = _prepare(cfg, work, log, workers, sizes)
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


def _prepare(cfg: Config, work: Path, log, workers: int, sizes: Sizes) -> dict:
    """The data stage in `work`: its steps, in order."""
    d, clock = cfg.data, Clock()
    sources = list(list_sources(cfg))  # a missing file fails now, before any work
    rows = RowSetup.of(cfg, log)  # the row settings, and the tokenizer that measures token lengths
    semantic = Semantic.of(d.semantic, cfg.path)  # a missing extra fails now, before any work
    col = Collector(work, d.dedup, stratified=d.stratify_field is not None, sizes=sizes)
    judge = Judge.of(d.quality, cfg.root, cfg.data_dir, cfg.run_dir)
    read = ReadAndScore(sources, rows.processor, workers, d.bad_csv, _max_rows(d), filters=[judge] if judge else [],
                        chunk=sizes.chunk)
    agreement = _read(read, col, judge)  # pass 1
    clock.lap("read_score_hash")
    sem = None
    if semantic is not None:
        sem = semantic.run(work / SPOOL, col.keys, col.files.rows_read)
        clock.lap("semantic")
    decide, write, check_leaks = Decide(d, sizes), WriteSplits(work, sizes.write_block), Leakage(work, sizes)
    fate = decide.run(col.keys, col.files.source_of, None if sem is None else sem.edges)
    sem_stats = semantic.stats(work / SPOOL, sem, fate) if semantic else None
    clock.lap("dedup_split_decisions")
    tally = write.run(col, fate)  # pass 2
    counts, totals = fate_totals(col, tally)
    if totals["kept"] == tally.mix_in_train:
        _no_usable_examples(work, cfg.data_dir, col, totals, tally, log)
    clock.lap("write_splits")
    leakage = check_leaks.run(counts)  # pass 3
    clock.lap("leakage_report")
    warns = warn(fate, col, counts, totals["kept"] - tally.mix_in_train, judge)
    col.ledger.carry_runs_from(cfg.data_dir / LEDGER)
    col.ledger.close()
    stats = {"rows_read": col.files.rows_read, **totals,
             **decision_stats(d, col, tally, fate, judge, agreement, sem_stats),
             "length_check": rows.length_check, "template_date": rows.template_date,
             "template_default_system": rows.template_default_system, "truncated": tally.truncated_kept,
             "leakage": leakage, "warnings": warns, "seconds": clock.seconds,
             "steps": step_counts(read, col.filter_counts, judge, semantic, decide, write, check_leaks),
             "seed": d.seed,
             "fractions": d.split.model_dump(), "stratify_field": d.stratify_field, "group_field": d.group_field}
    write_json(work / STATS, stats)
    write_data_card(work, stats)
    log_summary(cfg.data_dir, d.conflicts, col, tally, stats, sem_stats, clock.total(), log)
    return stats


class Clock:
    """Seconds each step took, for stats.json."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step], self.last = round(now - self.last, 2), now

    def total(self) -> float:
        return time.perf_counter() - self.start


def _max_rows(d: DataConfig) -> dict[int, int]:
    """data.sources entry → its max_rows, for the entries that have one."""
    return {i: s.max_rows for i, s in enumerate(d.sources) if s.max_rows is not None}


def _read(read: ReadAndScore, col: Collector, judge: Judge | None) -> dict | None:
    """Pass 1, and the judge's agreement with human review (if there are ratings) while it is open."""
    try:
        read.run(col)
        return judge.human_agreement() if judge is not None else None
    finally:
        if judge is not None:
            judge.close()


def _no_usable_examples(work: Path, data_dir: Path, col: Collector, totals: dict, tally: Tally, log) -> None:
    """Stop, but with every reason at once: the rejects file is kept and its reasons are listed by
    count, so a user fixes all the problems in one pass. A previous prepare's outputs stay as they
    were; its rejects.jsonl too (this run's then go to rejects.failed.jsonl)."""
    name = REJECTS_FAILED if (data_dir / TRAIN).exists() else REJECTS
    if totals["rejected"]:
        os.replace(work / REJECTS, data_dir / name)
    for reason, k in col.rejects.reasons.most_common(8):
        log(f"  rejected {k:>6}: {reason}")
    for reason, k in filter_kinds(col.keys.drops.values, tally.filter_codes).most_common(8):
        log(f"  filtered {k:>6}: {reason}")
    where = f"; every reason is in {data_dir / name}" if totals["rejected"] else ""
    raise SftflowError(f"no usable examples in data.sources ({col.files.rows_read} rows read, {totals['rejected']} "
                       f"rejected, {totals['filtered']} filtered){where}")
