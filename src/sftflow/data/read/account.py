"""What a reader gives (`RawRow`: a row or why it could not be read, with its file and line span) and
what it saw of a file (`ReadAccount`), held against the file's lines counted on their own
(`check_account`), so a row a reader skipped stops `prepare` instead of vanishing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftflow.data.read.text import count_lines
from sftflow.errors import SftflowError

MAX_ROW_BYTES = 16 << 20  # a row (a JSONL line, a JSON element, a CSV record) larger than this is rejected
# (the default of ReadOptions.max_row_bytes)


@dataclass
class RawRow:
    file: str
    line: int  # 1-based first physical line for text files; 1-based row number for Parquet and datasets
    row: Any = None
    error: str | None = None
    field: str | None = None
    raw: str | None = None  # the unparsed text of a broken row (bounded), for rejects.jsonl
    end_line: int = 0  # last physical line of the row (0: the same as line)


@dataclass
class ReadAccount:
    """What a reader saw of one file, for `check_account`: how many rows it yielded, which physical
    lines those rows covered, and the lines that held no row (blank, or the format's structure)."""

    rows: int = 0
    covered: int = 0  # distinct physical lines inside some row's span
    blank: int = 0
    structure: int = 0  # a CSV header, JSON brackets and keys
    last_line: int = 0  # the last line counted as covered (spans come in order)
    expected_rows: int | None = None  # for binary formats: the row count the file's metadata states
    first_gap: int | None = None  # first line a row span skipped over, if any
    encoding: str | None = None  # the codec a text file was read in (None: UTF-8, or UTF-16/32 by its BOM)

    def cover(self, start: int, end: int) -> None:
        if start > self.last_line + 1 and self.first_gap is None:
            self.first_gap = self.last_line + 1
        first = max(start, self.last_line + 1)
        if end >= first:
            self.covered += end - first + 1
            self.last_line = end

    def skip(self, lineno: int, structure: bool = False) -> None:
        """A physical line that holds no row."""
        if structure:
            self.structure += 1
        else:
            self.blank += 1
        self.last_line = max(self.last_line, lineno)


def check_account(path: Path | None, display: str, account: ReadAccount) -> None:
    """Stop with one line when a reader's rows and the file do not add up (a row was skipped)."""
    if account.expected_rows is not None:
        if account.rows != account.expected_rows:
            raise SftflowError(f"{display}: the file states {account.expected_rows} rows but {account.rows} were read; "
                               f"{abs(account.expected_rows - account.rows)} rows unaccounted for — please report this")
        return
    lines = count_lines(path, account.encoding)
    seen = account.covered + account.blank + account.structure
    if seen != lines or account.first_gap is not None:
        start = account.first_gap or min(seen, lines) + 1
        raise SftflowError(f"{display}: {lines} lines but the reader accounted for {seen}; lines from {start} on "
                           "were not read as rows — please report this with the file")


def too_big(size: int, limit: int) -> str:
    return (f"row is {size / (1 << 20):.1f} MiB, over the {limit >> 20} MiB limit for one example; "
            "split or shorten it")
