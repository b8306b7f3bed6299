"""Pass 1 as a step: every source's rows in chunks, converted, scored and run through the rule filters
(signals/rows.py; in worker processes with `workers` > 1), then the filters that need the main
process (the LLM judge: one cache, one request budget), then handed in input order to the
collector (account/collect.py). Each file's rows are then reconciled with its lines counted on
their own, so a row the reader skipped stops prepare instead of vanishing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from sftflow.data.read import ReadAccount, check_account
from sftflow.data.signals.rows import Chunk, RawRow, RowProcessor, RowSettings, SourceSpec
from sftflow.data.sizes import SIZES
from sftflow.data.step import Filter, Step
from sftflow.errors import SftflowError
from sftflow.progress import phase


@dataclass
class Capped:
    """Rows of a source past its max_rows: read (every row gets a fate) but not converted."""

    rows: list[RawRow]


class ReadAndScore(Step):
    """Pass 1: `sources` read with `bad_csv`, their first `max_rows` (data.sources entry → cap) rows
    processed by `processor` in `workers` processes, `chunk` rows at a time, then by `filters` (task rows
    only), then collected."""

    name = "read"

    def __init__(self, sources: list, processor: RowProcessor, workers: int, bad_csv: str,
                 max_rows: dict[int, int], filters: list[Filter], chunk: int = SIZES.chunk):
        super().__init__()
        self.chunk = chunk
        self.sources, self.processor, self.workers = sources, processor, workers
        self.bad_csv, self.max_rows, self.filters = bad_csv, max_rows, filters

    def run(self, col) -> None:
        pool = _pool(self.workers, self.processor.s)
        accounts: dict[str, tuple[Path, ReadAccount]] = {}
        try:
            with phase(f"prepare: reading, converting and scoring {len(self.sources)} file(s)", unit="rows") as update:
                for chunk, src in self._chunks(pool, accounts):
                    if isinstance(chunk, Capped):
                        col.add_capped(chunk.rows, src, self.max_rows[src.source])
                    else:
                        if not src.mix:  # general mix-in rows are not the task
                            for f in self.filters:
                                f.filter(chunk.rows)
                        col.add(chunk, src)
                    update(col.files.rows_read)
        finally:
            if pool is not None:
                pool.terminate()
        col.close_pass()
        self._reconcile(accounts, col)
        self.counts.update(rows=col.files.rows_read, files=len(accounts))

    def _chunks(self, pool, accounts: dict) -> Iterator[tuple[Chunk | Capped, SourceSpec]]:
        """Chunks of processed rows in input order; each file's ReadAccount lands in `accounts`. A source's
        rows past its first max_rows come as `Capped`."""
        taken: Counter = Counter()
        for src, source in self.sources:
            account = accounts[src.file] = (source.path, ReadAccount())
            rows = source.rows(account[1], self.bad_csv)
            room = self.max_rows[src.source] - taken[src.source] if src.source in self.max_rows else None
            head = rows if room is None else islice(rows, max(0, room))  # leaves the rest of `rows` unread
            jobs = ((raws, src) for raws in _batches(head, self.chunk))
            if pool is None:
                for raws, s in jobs:
                    yield self.processor.process(raws, s), src
            else:
                for chunk in pool.imap(_work, jobs):  # imap keeps input order: same result as one process
                    yield chunk, src
            taken[src.source] += account[1].rows
            if room is not None:
                for over in _batches(rows, self.chunk):
                    yield Capped(over), src

    @staticmethod
    def _reconcile(accounts: dict, col) -> None:
        """Every file's rows against its lines counted on their own (read.check_account), and the rows
        the readers yielded against the rows given a fate: a difference stops prepare, never exit 0."""
        for display, (path, account) in accounts.items():
            check_account(path, display, account)
            got = col.files.counts[display]["read"]
            if got != account.rows:
                raise SftflowError(f"{display}: {account.rows} rows read but {got} given a fate — please report this")


def _batches(rows: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(rows, size)):
        yield batch


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
