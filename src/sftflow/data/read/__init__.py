"""Reading raw examples: which rows a source holds (`iter_sources`), and each file format's reader
(`registry.READERS`), row by row with the file and line span of every row.

    for source in iter_sources(cfg.data.sources[0], cfg.root, "data.sources[0]"):
        for raw in source.rows(): ...

Read: JSONL, JSON (an array, an object of arrays, or rows under `field:`), CSV (delimiter sniffed)
and TSV, Parquet, `save_to_disk` folders and hub datasets; text files compressed (.gz, .zst, .bz2, .xz) or not,
in UTF-8, UTF-16/32 or a legacy encoding (named by `encoding:`, else guessed with a warning).

Nothing is lost on the way: a row that cannot be parsed comes out as a `RawRow` with `error` set (and
its raw text, bounded), never raised, and the readers recover after it. Every reader also fills a
`ReadAccount`: which physical lines its rows covered, and which were blank or structure. A row over
`ReadOptions.max_row_bytes` (default `MAX_ROW_BYTES`) is rejected without being held whole.
"""

from sftflow.data.read.account import MAX_ROW_BYTES, RawRow, ReadAccount, check_account
from sftflow.data.read.registry import READERS, Reader, ReadOptions, read_rows, reader_for, supported
from sftflow.data.read.sources import Source, iter_sources, resolve_sources

__all__ = ["MAX_ROW_BYTES", "READERS", "RawRow", "ReadAccount", "ReadOptions", "Reader", "Source", "check_account",
           "iter_sources", "read_rows", "reader_for", "resolve_sources", "supported"]
