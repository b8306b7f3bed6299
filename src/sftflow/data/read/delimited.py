"""CSV and TSV: records with their physical line spans (quoted fields may hold line breaks). A `.csv`
file's delimiter is sniffed from its header line among `,` `;` and tab (a European spreadsheet
exports `;`); a `.tsv` file's is tab.

A record whose quotes never balance is rejected on its first physical line and reading resumes on the
next (or, with `bad_csv: fail`, the file fails with that line).
"""

from __future__ import annotations

import csv
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from sftflow.data.read.account import MAX_ROW_BYTES, RawRow, ReadAccount
from sftflow.data.read.text import physical_lines, utf8_blocks
from sftflow.errors import SftflowError
from sftflow.io import preview

DELIMITERS = ",;\t"  # what a .csv file's header is sniffed for, the first preferred on a tie


class _TooLong(Exception):
    pass


def read_delimited(path: Path, account: ReadAccount, delimiter: str | None, bad: str,
                   max_row_bytes: int = MAX_ROW_BYTES) -> Iterator[RawRow]:
    """CSV/TSV records with their physical line spans. A record that fails to parse because a
    quote opened and never closed properly (a stray quote reads on into the next lines until the
    next quote, where the CSV then breaks) is taken back: its first line is rejected alone and
    reading resumes on the next line."""
    name = str(path)
    csv.field_size_limit(sys.maxsize)
    source = enumerate(physical_lines(utf8_blocks(path, account.encoding)), start=1)
    pending: deque = deque()  # lines taken back after a bad record
    if delimiter is None:
        delimiter = _sniff(source, pending)
    header = None
    while True:
        taken: list[tuple[int, bytes]] = []
        reader = csv.reader(_feed(source, pending, taken, max_row_bytes), delimiter=delimiter, strict=True)
        while True:
            del taken[:]
            try:
                values = next(reader)
            except StopIteration:
                if header is None and taken:
                    for n, _ in taken:
                        account.skip(n)
                return
            except (csv.Error, _TooLong) as err:
                if not taken:
                    return
                why = ("quotes do not balance within the size limit" if isinstance(err, _TooLong)
                       else f"malformed CSV: {err}")
                if header is None:
                    raise SftflowError(f"{path}:{taken[0][0]}: cannot read the header: {why}") from err
                yield _bad_record(name, taken, why, pending, bad)
                break  # a new reader over the lines taken back
            first, last = taken[0][0], taken[-1][0]
            if not any(v.strip() for v in values):
                for n, _ in taken:
                    account.skip(n)
                continue
            if header is None:
                header = _header(path, values, first)
                for n, _ in taken:
                    account.skip(n, structure=True)
                continue
            if not _utf8(values):
                yield RawRow(name, first, error="invalid UTF-8", raw=preview(b"\n".join(t for _, t in taken)),
                             end_line=last)
                continue
            if len(values) != len(header):
                why = f"has {len(values)} fields, header has {len(header)} (unbalanced quotes?)"
                yield RawRow(name, first, error=why, raw=preview(b"\n".join(t for _, t in taken)), end_line=last)
                continue
            yield RawRow(name, first, dict(zip(header, values, strict=True)), end_line=last)


def _feed(source, pending: deque, taken: list, limit: int) -> Iterator[str]:
    """Lines for csv.reader, recording which physical lines each record took (at most `limit` bytes a record)."""
    size = 0
    while True:
        if pending:
            item = pending.popleft()
        else:
            item = next(source, None)
            if item is None:
                return
        if not taken:
            size = 0
        taken.append(item)
        size += len(item[1])
        if size > limit:
            raise _TooLong
        yield item[1].decode("utf-8", "surrogateescape") + "\n"


def _bad_record(name: str, taken: list, why: str, pending: deque, bad: str) -> RawRow:
    first, text = taken[0]
    if bad == "fail":
        raise SftflowError(f"{name}:{first}: {why}; fix the quotes on that line, or set data.bad_csv: reject "
                           "to reject such lines and read on")
    pending.extendleft(reversed(taken[1:]))
    if len(taken) > 1:
        why = f"unbalanced quotes: a quoted field opened on this line never closes properly ({why})"
    return RawRow(name, first, error=why, raw=preview(text), end_line=first)


def _header(path: Path, values: list[str], line: int) -> list[str]:
    if not _utf8(values):
        raise SftflowError(f"{path}:{line}: the header is not UTF-8 text; re-encode the file as UTF-8")
    header = [h.strip() for h in values]
    seen = set()
    for h in header:
        if h in seen:
            raise SftflowError(f"{path}:{line}: column {h!r} appears twice in the header; rename one of them "
                               "(sftflow would not know which to read)")
        seen.add(h)
    return header


def _utf8(values: list[str]) -> bool:
    try:
        "".join(values).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True



def _sniff(source, pending: deque) -> str:
    """The delimiter of a CSV file, from its first non-blank line (the header), which is put back to be read."""
    for item in source:
        pending.append(item)
        if item[1].strip():
            sample = item[1].decode("utf-8", "replace")
            try:
                return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
            except csv.Error:  # no candidate in it: a one-column file
                return ","
    return ","
