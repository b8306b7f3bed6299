"""Read raw example files row by row, keeping the file and the line span of every row.

Supported: JSONL, JSON (array, or object of arrays), CSV/TSV (quoted multi-line fields),
Parquet, and folders saved by `datasets.save_to_disk`. Text files may be UTF-8 (with or
without BOM), UTF-16 or UTF-32 (by BOM, or by the NULs around a first ASCII character, as
RFC 4627 detects JSON's encoding), with \\n, \\r\\n or lone \\r line ends.

Nothing is lost on the way: a row that cannot be parsed comes out as a `RawRow` with `error`
set (and its raw text, bounded), never raised, and the readers recover after it. A bad
element of a JSON array is one reject and scanning goes on with the next element; a CSV
record whose quotes never balance is rejected on its first physical line and reading resumes
on the next (or, with `bad_csv: fail`, the file fails with that line). Every reader also fills
a `ReadAccount`: which physical lines its rows covered, and which were blank or structure
(brackets, a header). `check_account` holds that against the file's physical lines counted on
their own, so a row a reader skipped stops `prepare` instead of vanishing.

Rows stream lazily (JSONL, JSON arrays, CSV, Parquet batches): memory is bounded by the
longest line (a one-line JSON array is held whole), not the file. A row over `MAX_ROW_BYTES`
is rejected without being held whole.
"""

from __future__ import annotations

import codecs
import csv
import glob
import json
import os
import re
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftflow.errors import SftflowError

# JSON may escape half of a UTF-16 pair ("\ud800"): text that no UTF-8 file can hold, so such rows are
# rejected here rather than crashing the writer of rejects.jsonl or the spool later.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE = "invalid Unicode: a lone surrogate escape (\\ud800-\\udfff) that UTF-8 cannot hold"
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
MAX_RAW = 2000  # characters of a broken row's raw text kept for rejects.jsonl
MAX_ROW_BYTES = 16 << 20  # a row (a JSONL line, a JSON element, a CSV record) larger than this is rejected
BLOCK = 1 << 20
_NEWLINE = re.compile(rb"\r\n|\r|\n")


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


def resolve_sources(pattern: str, root: Path) -> list[Path]:
    """A path, folder or glob (relative to the config) → the files it names, sorted, each file once
    (a symlink loop or two links to one file do not read it twice)."""
    p = Path(pattern).expanduser()
    full = p if p.is_absolute() else root / p
    if any(ch in pattern for ch in "*?["):
        files = _once(Path(f) for f in sorted(glob.glob(str(full), recursive=True)) if Path(f).is_file())
        if not files:
            raise SftflowError(f"data.sources: {pattern!r} matches no files under {root}")
        return files
    if not full.exists():
        raise SftflowError(f"data.sources: {full} not found; check the path (relative to the config file)")
    if full.is_dir() and not (full / "dataset_info.json").exists() and not (full / "dataset_dict.json").exists():
        files = _once(_walk(full))
        if not files:
            raise SftflowError(f"data.sources: folder {full} holds no .jsonl/.json/.csv/.tsv/.parquet files")
        return files
    return [full]


def _walk(folder: Path) -> Iterator[Path]:
    """Data files under a folder, sorted; symlinked folders are followed once (a loop ends there)."""
    seen = set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(names):
            f = Path(top) / name
            if f.suffix.lower() in SUFFIXES and f.is_file():
                yield f


def _once(paths) -> list[Path]:
    out, seen = [], set()
    for p in sorted(paths):
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def read_rows(path: Path, account: ReadAccount | None = None, bad_csv: str = "reject") -> Iterator[RawRow]:
    """The rows of one file, in order. `account` (optional) is filled as rows are read."""
    account = account if account is not None else ReadAccount()
    if path.is_dir():
        yield from _read_hf_dataset(path, account)
        return
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SftflowError(f"{path}: unsupported file type {path.suffix!r}; use .jsonl, .json, .csv, .tsv or .parquet")
    try:
        if kind == "jsonl":
            rows = _read_jsonl(path, account)
        elif kind == "json":
            rows = _read_json(path, account)
        elif kind in ("csv", "tsv"):
            rows = _read_csv(path, "\t" if kind == "tsv" else ",", account, bad_csv)
        else:
            rows = _read_parquet(path, account)
        for r in rows:
            account.rows += 1
            if kind != "parquet":
                account.cover(r.line, r.end_line or r.line)
            yield r
    except PermissionError as err:
        raise SftflowError(f"{path}: cannot read ({err.strerror}); check the file's permissions") from err


# ---------------------------------------------------------------- text: encodings and lines


def _sniff(head: bytes) -> tuple[str | None, int]:
    """(codec, BOM length) for a file's first bytes; None = UTF-8 as it is."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                       (codecs.BOM_UTF8, None), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            return codec, len(bom)
    if len(head) >= 4:  # no BOM: an ASCII first character shows the encoding by where its NULs are
        zeros = tuple(b == 0 for b in head[:4])
        return {(True, True, True, False): "utf-32-be", (False, True, True, True): "utf-32-le",
                (True, False, True, False): "utf-16-be", (False, True, False, True): "utf-16-le"}.get(zeros), 0
    return None, 0


def _utf8_blocks(path: Path) -> Iterator[bytes]:
    """The file's text as UTF-8 bytes, a block at a time. Text in UTF-16/32 is transcoded; a lone
    surrogate in it becomes bytes that are not UTF-8, so only its own row is rejected."""
    with open(path, "rb") as f:
        head = f.read(BLOCK)
        codec, skip = _sniff(head)
        if codec is None:
            yield head[skip:]
            while block := f.read(BLOCK):
                yield block
            return
        decoder = codecs.getincrementaldecoder(codec)(errors="surrogatepass")
        block = head[skip:]
        while block:
            yield decoder.decode(block).encode("utf-8", "surrogatepass")
            block = f.read(BLOCK)
        try:
            yield decoder.decode(b"", final=True).encode("utf-8", "surrogatepass")
        except UnicodeDecodeError as err:
            raise SftflowError(f"{path}: ends in the middle of a {codec} character; the file is truncated") from err


def physical_lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines without their ends; \\n, \\r\\n and a lone \\r each end a line (as Python's universal
    newlines). A last line without an end counts; an empty file has no lines."""
    carry = b""
    for block in blocks:
        data = carry + block
        hold = b""
        if data.endswith(b"\r"):  # its \n may start the next block
            data, hold = data[:-1], b"\r"
        parts = _NEWLINE.split(data) if b"\r" in data else data.split(b"\n")
        carry = parts.pop() + hold
        yield from parts
    if carry:
        yield carry[:-1] if carry.endswith(b"\r") else carry


def count_lines(path: Path) -> int:
    """Physical lines of a text file, counted from the bytes alone (no parsing): the independent
    count every text reader's account must match."""
    n, last, pending_cr = 0, b"", False
    for block in _utf8_blocks(path):
        if not block:
            continue
        crlf = block.count(b"\r\n") + (pending_cr and block.startswith(b"\n"))
        n += block.count(b"\n") + block.count(b"\r") - crlf
        pending_cr, last = block.endswith(b"\r"), block[-1:]
    return n + (last not in (b"", b"\n", b"\r"))


def check_account(path: Path, display: str, account: ReadAccount) -> None:
    """Stop with one line when a reader's rows and the file do not add up (a row was skipped)."""
    if account.expected_rows is not None:
        if account.rows != account.expected_rows:
            raise SftflowError(f"{display}: the file states {account.expected_rows} rows but {account.rows} were read; "
                               f"{abs(account.expected_rows - account.rows)} rows unaccounted for — please report this")
        return
    lines = count_lines(path)
    seen = account.covered + account.blank + account.structure
    if seen != lines or account.first_gap is not None:
        start = account.first_gap or min(seen, lines) + 1
        raise SftflowError(f"{display}: {lines} lines but the reader accounted for {seen}; lines from {start} on "
                           "were not read as rows — please report this with the file")


def _bounded(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text[: MAX_RAW * 4].decode("utf-8", "backslashreplace")
    return text if len(text) <= MAX_RAW else text[:MAX_RAW] + "…"


def _too_big(size: int) -> str:
    return (f"row is {size / (1 << 20):.1f} MiB, over the {MAX_ROW_BYTES >> 20} MiB limit for one example; "
            "split or shorten it")


def _parse_json(text: bytes, name: str, line: int, end: int, where: str = "") -> RawRow:
    """One row's JSON text → a row, or a reject that keeps the text and where it broke."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        at = f"line {line + err.lineno - 1}, column {err.colno}" if err.lineno > 1 else f"column {err.colno}"
        return RawRow(name, line, error=f"invalid JSON: {err.msg} at {at}{where}", raw=_bounded(text), end_line=end)
    except UnicodeDecodeError as err:
        return RawRow(name, line, error=f"invalid UTF-8 at byte {err.start}", raw=_bounded(text), end_line=end)
    except RecursionError:
        return RawRow(name, line, error="invalid JSON: nested too deeply", raw=_bounded(text), end_line=end)
    if _SURROGATE_ESCAPE.search(text) and not _encodable(row):
        return RawRow(name, line, error=LONE_SURROGATE, raw=_bounded(text), end_line=end)
    return RawRow(name, line, row, end_line=end)


def _encodable(value) -> bool:
    """True when every string in a parsed row can be written as UTF-8 (no lone surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


# ---------------------------------------------------------------- JSONL


def _read_jsonl(path: Path, account: ReadAccount) -> Iterator[RawRow]:
    name = str(path)
    for lineno, raw in enumerate(physical_lines(_utf8_blocks(path)), start=1):
        if not raw.strip():
            try:
                if not raw.decode("utf-8").strip():
                    account.skip(lineno)
                    continue
            except UnicodeDecodeError:
                pass
        if len(raw) > MAX_ROW_BYTES:
            yield RawRow(name, lineno, error=_too_big(len(raw)), raw=_bounded(raw))
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield RawRow(name, lineno, error=f"invalid UTF-8 at byte {err.start}", raw=_bounded(raw))
            continue
        yield _parse_json(raw, name, lineno, lineno)


# ---------------------------------------------------------------- JSON


# a whole string (no raw line break inside: JSON forbids it), or one structural character
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},:]')


def _read_json(path: Path, account: ReadAccount) -> Iterator[RawRow]:
    """A JSON array streams element by element (`_ArrayScanner`); an object is read whole: one row,
    or an object of arrays ({"train": [...]}, or columnar {"prompt": [...], "completion": [...]})."""
    lines = physical_lines(_utf8_blocks(path))
    first = []
    for line in lines:
        first.append(line)
        if line.strip():
            break
    start = b"".join(first).lstrip()[:1]
    if not start:  # an empty file holds no rows, as an empty .jsonl or .csv
        for _ in first:
            account.skip(0)
        return
    if start == b"[":
        yield from _ArrayScanner(str(path), account).scan(_chain(first, lines))
        return
    yield from _read_json_object(path, account)


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


class _Element:
    """One array element being read: the lines it spans (held, up to MAX_ROW_BYTES), its open brackets."""

    def __init__(self, lineno: int, line: bytes, col: int, indent: int):
        self.start, self.col, self.indent = lineno, col, indent
        self.lines: list[tuple[int, bytes]] = [(lineno, line)]
        self.size = len(line) - col
        self.base = -col  # where the current line starts in its text
        self.check_at = 0  # text size at which to look for the next row inside it (set by the scanner)
        self.last = lineno  # the last line seen
        self.stack: list[int] = []
        self.closed = False  # a complete value with nothing open: the next opener starts a new row
        self.key: bytes | None = None  # its first key (as JSON text)
        self.cuts: list[tuple[int, int]] = []  # (line, column) of lines that start like a row inside it

    def hold(self, lineno: int, line: bytes) -> None:
        self.base = self.size + 1  # where this line starts in its text
        self.size += len(line) + 1
        self.last = lineno
        if self.size <= MAX_ROW_BYTES:
            self.lines.append((lineno, line))

    def where(self, offset: int) -> tuple[int, int]:
        """(line, column) of a byte offset into `text()`."""
        for n, line in self.lines:
            a = self.col if n == self.start else 0
            if offset <= len(line) - a:
                return n, a + offset
            offset -= len(line) - a + 1
        return self.last, 0

    def text(self, end: int | None = None, end_col: int | None = None) -> bytes:
        """Its text from the start column, up to `end_col` of line `end` (or all lines held)."""
        parts = []
        for n, line in self.lines:
            if end is not None and n > end:
                break
            a = self.col if n == self.start else 0
            parts.append(line[a:end_col] if n == end and end_col is not None else line[a:])
        return b"\n".join(parts)


class _ArrayScanner:
    """Splits a top-level JSON array into its elements a line at a time (strings and brackets
    tracked by `_TOKEN`) and parses each on its own: a broken element is one reject.

    An element whose brackets never close, or that fails to parse, is cut where the next row
    seems to start inside it (`_row_starts`, or a `{` that starts a line at the indentation rows
    start at), and the text from there is read again, so one missing bracket or stray quote
    never takes the rows after it along.
    Arrays one after another (`[...][...]`) are read as one; text outside them is rejected a
    line at a time."""

    def __init__(self, name: str, account: ReadAccount):
        self.name, self.account = name, account
        self.inside = False
        self.elem: _Element | None = None
        self.indent: int | None = None  # indentation of rows that start a line, once one has
        self.pending: deque = deque()  # (line number, line, column) to read again after a cut
        self.keys: set[bytes] = set(_ROW_KEYS)  # first keys rows of this file start with (as JSON)
        self.largest = 0  # the largest row read so far, in bytes

    def scan(self, lines: Iterator[bytes]) -> Iterator[RawRow]:
        source = ((n, line, 0) for n, line in enumerate(lines, start=1))
        while True:
            item = self.pending.popleft() if self.pending else next(source, None)
            if item is None:
                if self.elem is None:
                    return
                yield self._cut("the array is not closed (truncated file?)")
                continue
            yield from self._line(*item)

    def _line(self, lineno: int, line: bytes, start: int) -> Iterator[RawRow]:
        """One line (from column `start`): the rows that end on it, and the element left open after it."""
        e = self.elem
        if not line[start:].strip():
            if e is not None:
                e.hold(lineno, line)
            elif not start:
                self.account.skip(lineno)
            return
        indent = len(line) - len(line.lstrip())
        if e is not None and not self._held(e, lineno, line, indent):
            yield self._cut("")
            return
        in_row, pos, prev = e is not None or start > 0, start, 0
        for m in _TOKEN.finditer(line, start):
            s, c = m.start(), line[m.start()]
            if not self.inside:
                if c != ord("[") or line[pos:s].strip():
                    yield self._outside(lineno, line)
                    return
                self.inside, pos = True, m.end()
                continue
            e = self.elem
            if e is None:
                gap = line[pos:s]
                if not gap.strip() and c in b",]":  # an empty slot or the end of the array
                    self.inside = c == ord(",")
                    pos = m.end()
                    continue
                e = self._begin(lineno, line, pos + len(gap) - len(gap.lstrip()) if gap.strip() else s, indent)
                in_row, prev = True, 0
            if c in b"{[":
                if e.closed and not e.stack:  # a complete row, then another with no comma between
                    row, cut = self._end(lineno, s)
                    yield row
                    if cut:
                        return
                    e = self._begin(lineno, line, s, indent)
                e.stack.append(c)
            elif c in b"}]" and e.stack and e.stack[-1] == c - 2:  # "[" + 2 == "]", "{" + 2 == "}"
                e.stack.pop()
                e.closed = not e.stack
            elif c in b",]" and not e.stack:
                row, cut = self._end(lineno, s)
                yield row
                if cut:
                    return
                self.inside = c == ord(",")
            elif e.stack and e.base + m.end() > e.check_at and (cut := self._early_cut(e, lineno, s, m.end())):
                yield self._cut("", cut)
                return
            if c == ord('"'):
                if not e.stack:
                    e.closed = True
                elif e.key is None and len(e.stack) == 1 and prev == ord("{"):
                    e.key = m.group()
            prev = c
            pos = m.end()
        if (outside := self._tail(lineno, line, pos, indent, in_row)) is not None:
            yield outside

    def _held(self, e: _Element, lineno: int, line: bytes, indent: int) -> bool:
        """Hold a line of the open element (noting a line that starts like a row while brackets are
        open); False when the element grew too large with such a cut in it: the line is queued to be
        read again, and the element must be cut."""
        if e.stack and line.lstrip()[:1] == b"{" and indent <= (e.indent if self.indent is None else self.indent):
            e.cuts.append((lineno, indent))
        if e.cuts and e.size + len(line) + 1 > MAX_ROW_BYTES:  # read again from the cut, this line too
            self.pending.appendleft((lineno, line, 0))
            return False
        e.hold(lineno, line)
        return True

    def _early_cut(self, e: _Element, lineno: int, col: int, end: int) -> tuple[int, int] | None:
        """Still open and long: look for the next row inside it now rather than at its end, so a broken
        row costs a bounded re-read, never the rest of the file. The cut, if it lies before `col`."""
        e.check_at = 2 * (e.base + end)
        cut = self._cut_at(e, e.text(lineno, end))
        return cut if cut is not None and cut < (lineno, col) else None

    def _tail(self, lineno: int, line: bytes, pos: int, indent: int, in_row: bool) -> RawRow | None:
        """After the line's last token: text outside the array (a reject), or the start of an element
        with no bracket yet; a line with no part of a row is counted as structure."""
        tail = line[pos:]
        if tail.strip():
            if not self.inside:
                return self._outside(lineno, line)
            if self.elem is None:
                self._begin(lineno, line, pos + len(tail) - len(tail.lstrip()), indent)
                in_row = True
        if not in_row:
            self.account.skip(lineno, structure=True)
        return None

    def _outside(self, lineno: int, line: bytes) -> RawRow:
        return RawRow(self.name, lineno, error="invalid JSON: text outside the array of rows", raw=_bounded(line),
                      end_line=lineno)

    def _begin(self, lineno: int, line: bytes, col: int, indent: int) -> _Element:
        if self.indent is None and col == indent:  # the row starts its line
            self.indent = indent
        self.elem = _Element(lineno, line, col, indent)
        self.elem.check_at = max(CHECK_MIN, 4 * self.largest)
        return self.elem

    def _end(self, lineno: int, col: int) -> tuple[RawRow, bool]:
        """The element ends before `col` of this line: (its row, whether it was cut instead, in which
        case the text from the cut on, this line among it, is read again)."""
        e = self.elem
        self.elem = None
        size = e.base + col  # its text up to here (a one-line array is one long line: not all of it)
        if size > MAX_ROW_BYTES:
            return RawRow(self.name, e.start, error=_too_big(size), raw=_bounded(e.text()), end_line=lineno), False
        text = e.text(lineno, col)
        row = _parse_json(text, self.name, e.start, lineno)
        if row.error is None:
            self.largest = max(self.largest, len(text))
            if e.key is not None:
                self.keys.add(e.key)
        cut = self._cut_at(e, text) if row.error is not None else None
        if cut is not None and cut < (lineno, col):
            self.elem = e
            return self._cut("", cut), True
        return row, False

    def _cut_at(self, e: _Element, text: bytes) -> tuple[int, int] | None:
        """Where the next row seems to start inside a broken element's text: the first of the places
        the raw text shows (`_row_starts`) and the lines that start like a row while brackets were open."""
        starts = [e.where(at) for at in _row_starts(text[:MAX_ROW_BYTES], self.keys)]
        return min(starts + e.cuts[:1], default=None)

    def _cut(self, why: str, cut: tuple[int, int] | None = None) -> RawRow:
        """End the current element where the next row seems to start inside it (all of it when
        nowhere) and queue the text from there to be read again (see `_cut_at`; the raw text shows
        what a stray quote hides from the tokens)."""
        e, self.elem = self.elem, None
        cut = cut or self._cut_at(e, e.text())
        if cut is None:
            return RawRow(self.name, e.start, error=f"invalid JSON: {why or 'cannot be parsed'}", raw=_bounded(e.text()),
                          end_line=e.last)
        n, col = cut
        self.pending.extendleft(reversed([(k, line, col if k == n else 0) for k, line in e.lines if k >= n]))
        cut_line = next(line for k, line in e.lines if k == n)
        ends_here = n == e.start or cut_line[:col].strip()
        row = _parse_json(e.text(n, col), self.name, e.start, n if ends_here else n - 1)
        if row.error is not None:
            row.error += f" (it does not close before line {n}, where the next row seems to start)"
        return row


CHECK_MIN = 4096  # bytes of an open element before its text is first searched for the next row
_ROW_KEYS = (b'"messages"', b'"conversations"', b'"instruction"', b'"prompt"', b'"text"')


def _row_starts(text: bytes, keys: set[bytes]) -> list[int]:
    """Byte offsets in a broken element's text where the next row seems to start: `, {` and a key
    rows of this file start with; or where the JSON parser, after a ',' inside an object, found
    something other than a key (the object's '}' is missing and the next element follows)."""
    out = []
    first = b"|".join(re.escape(k) for k in sorted(keys))
    m = re.compile(rb",[ \t\r\n]*(\{[ \t\r\n]*(?:" + first + rb"))").search(text)
    if m:
        out.append(m.start(1))
    try:
        json.loads(text.decode("utf-8", "surrogateescape"))  # a bad byte later on must not hide the error
    except json.JSONDecodeError as err:
        at = len(err.doc[:err.pos].encode("utf-8", "surrogateescape"))
        if (err.msg.startswith("Expecting property name") and text[at:at + 1] and text[at] not in b",}:"
                and text[:at].rstrip().endswith(b",")):
            out.append(at)
    except RecursionError:
        pass
    return out


def _read_json_object(path: Path, account: ReadAccount) -> Iterator[RawRow]:
    name = str(path)
    text = b"".join(line + b"\n" for line in physical_lines(_utf8_blocks(path)))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SftflowError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise SftflowError(f"{path}: not UTF-8 text (byte {err.start}); re-encode the file as UTF-8") from err
    except RecursionError as err:
        raise SftflowError(f"{path}: invalid JSON: nested too deeply") from err
    lines = text.count(b"\n")
    if not isinstance(data, dict):
        raise SftflowError(f"{path}: expected a JSON array of rows or an object of arrays, got {type(data).__name__}")
    if not (data and all(isinstance(v, list) for v in data.values())):
        yield RawRow(name, 1, data, end_line=lines)
        return
    starts = _element_lines(text)  # key → line of each element, from the text itself
    rows = []
    lengths = {len(v) for v in data.values()}
    if len(lengths) == 1 and not any(isinstance(x, dict) for v in data.values() for x in v):
        # columnar {"prompt": [...], "completion": [...]}: a row's line is that of its first column
        keys = list(data)
        rows = [RawRow(name, starts[keys[0]][i], {k: data[k][i] for k in keys}) for i in range(lengths.pop())]
    else:
        rows = [RawRow(name, starts[k][i], row) for k, v in data.items() for i, row in enumerate(v)]
    by_line: dict[int, list[RawRow]] = {}
    for r in rows:
        by_line.setdefault(r.line, []).append(r)
    for n in range(1, lines + 1):  # in line order: brackets, keys and continuation lines are structure
        if n in by_line:
            yield from by_line[n]
        else:
            account.skip(n, structure=True)


def _element_lines(text: bytes) -> dict[str, list[int]]:
    """For an object of arrays: the line where each element of each top-level array starts."""
    out: dict[str, list[int]] = {}
    depth, key, expect = 0, None, True
    for lineno, line in enumerate(text.split(b"\n"), start=1):
        for m in re.finditer(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},:]|[^\s\[\]{},:"]+', line):
            tok = m.group()
            if depth == 1 and tok.startswith(b'"') and key is None:
                key = json.loads(tok)
                continue
            if depth == 2 and expect and tok not in (b",", b"]"):
                out.setdefault(key, []).append(lineno)
                expect = False
            if tok in (b"{", b"["):
                depth += 1
            elif tok in (b"}", b"]"):
                depth -= 1
                if depth == 1:
                    key = None
            elif tok == b"," and depth == 2:
                expect = True
            if depth == 2 and tok == b"[":
                expect = True
    return out


# ---------------------------------------------------------------- CSV


class _TooLong(Exception):
    pass


def _read_csv(path: Path, delimiter: str, account: ReadAccount, bad: str) -> Iterator[RawRow]:
    """CSV/TSV records with their physical line spans. A record that fails to parse because a
    quote opened and never closed properly (a stray quote reads on into the next lines until the
    next quote, where the CSV then breaks) is taken back: its first line is rejected alone and
    reading resumes on the next line."""
    name = str(path)
    csv.field_size_limit(sys.maxsize)
    source = enumerate(physical_lines(_utf8_blocks(path)), start=1)
    pending: deque = deque()  # lines taken back after a bad record
    header = None
    while True:
        taken: list[tuple[int, bytes]] = []
        reader = csv.reader(_feed(source, pending, taken), delimiter=delimiter, strict=True)
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
                yield RawRow(name, first, error="invalid UTF-8", raw=_bounded(b"\n".join(t for _, t in taken)),
                             end_line=last)
                continue
            if len(values) != len(header):
                why = f"has {len(values)} fields, header has {len(header)} (unbalanced quotes?)"
                yield RawRow(name, first, error=why, raw=_bounded(b"\n".join(t for _, t in taken)), end_line=last)
                continue
            yield RawRow(name, first, dict(zip(header, values, strict=True)), end_line=last)


def _feed(source, pending: deque, taken: list) -> Iterator[str]:
    """Lines for csv.reader, recording which physical lines each record took."""
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
        if size > MAX_ROW_BYTES:
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
    return RawRow(name, first, error=why, raw=_bounded(text), end_line=first)


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


# ---------------------------------------------------------------- binary formats


def _read_parquet(path: Path, account: ReadAccount) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    name = str(path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise SftflowError(f"{path}: not a readable Parquet file ({err})") from err
    account.expected_rows = pf.metadata.num_rows
    n = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield RawRow(name, n, row)


def _read_hf_dataset(path: Path, account: ReadAccount) -> Iterator[RawRow]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as err:
        raise SftflowError(f"{path}: not a dataset saved with datasets.save_to_disk ({err})") from err
    parts = ds.items() if isinstance(ds, datasets.DatasetDict) else [(None, ds)]
    account.expected_rows = sum(part.num_rows for _, part in parts)
    for split, part in parts:
        name = f"{path}[{split}]" if split else str(path)
        for i, row in enumerate(part):
            account.rows += 1
            yield RawRow(name, i + 1, row)
