"""A JSON file: an array of rows streamed element by element (`_ArrayScanner`), or an object read whole
(`json_object.py`). Memory is bounded by the longest line (a one-line array is held whole), not the
file; a broken element is one reject and scanning goes on with the next element, so one missing
bracket or stray quote never takes the rows after it along.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from sftflow.data.read.account import MAX_ROW_BYTES, RawRow, ReadAccount, too_big
from sftflow.data.read.json_object import read_json_object
from sftflow.data.read.jsonl import parse_json
from sftflow.data.read.text import physical_lines, utf8_blocks
from sftflow.errors import SftflowError
from sftflow.formats import FORMATS
from sftflow.io import preview

# a whole string (no raw line break inside: JSON forbids it), or one structural character
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},:]')


def read_json(path: Path, account: ReadAccount, field: str | None = None,
              max_row_bytes: int = MAX_ROW_BYTES) -> Iterator[RawRow]:
    """A JSON array streams element by element (`_ArrayScanner`); an object is read whole: one row,
    or an object of arrays ({"train": [...]}, or columnar {"prompt": [...], "completion": [...]}), or the
    array under `field` ({"version": 2, "data": [...]} with field: data)."""
    lines = physical_lines(utf8_blocks(path, account.encoding))
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
        if field is not None:
            raise SftflowError(f"{path}: field: {field!r} names a key of a JSON object, but this file is an array "
                               "of rows; remove field from its data.sources entry")
        yield from _ArrayScanner(str(path), account, max_row_bytes).scan(_chain(first, lines))
        return
    yield from read_json_object(path, account, field)


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


class _Element:
    """One array element being read: the lines it spans (held, up to `limit` bytes), its open brackets."""

    def __init__(self, lineno: int, line: bytes, col: int, indent: int, limit: int):
        self.start, self.col, self.indent, self.limit = lineno, col, indent, limit
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
        if self.size <= self.limit:
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

    def __init__(self, name: str, account: ReadAccount, max_row_bytes: int):
        self.name, self.account, self.limit = name, account, max_row_bytes
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
        if e.cuts and e.size + len(line) + 1 > self.limit:  # read again from the cut, this line too
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
        return RawRow(self.name, lineno, error="invalid JSON: text outside the array of rows", raw=preview(line),
                      end_line=lineno)

    def _begin(self, lineno: int, line: bytes, col: int, indent: int) -> _Element:
        if self.indent is None and col == indent:  # the row starts its line
            self.indent = indent
        self.elem = _Element(lineno, line, col, indent, self.limit)
        self.elem.check_at = max(CHECK_MIN, 4 * self.largest)
        return self.elem

    def _end(self, lineno: int, col: int) -> tuple[RawRow, bool]:
        """The element ends before `col` of this line: (its row, whether it was cut instead, in which
        case the text from the cut on, this line among it, is read again)."""
        e = self.elem
        self.elem = None
        size = e.base + col  # its text up to here (a one-line array is one long line: not all of it)
        if size > self.limit:
            return RawRow(self.name, e.start, error=too_big(size, self.limit), raw=preview(e.text()), end_line=lineno), False
        text = e.text(lineno, col)
        row = parse_json(text, self.name, e.start, lineno)
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
        starts = [e.where(at) for at in _row_starts(text[:self.limit], self.keys)]
        return min(starts + e.cuts[:1], default=None)

    def _cut(self, why: str, cut: tuple[int, int] | None = None) -> RawRow:
        """End the current element where the next row seems to start inside it (all of it when
        nowhere) and queue the text from there to be read again (see `_cut_at`; the raw text shows
        what a stray quote hides from the tokens)."""
        e, self.elem = self.elem, None
        cut = cut or self._cut_at(e, e.text())
        if cut is None:
            return RawRow(self.name, e.start, error=f"invalid JSON: {why or 'cannot be parsed'}", raw=preview(e.text()),
                          end_line=e.last)
        n, col = cut
        self.pending.extendleft(reversed([(k, line, col if k == n else 0) for k, line in e.lines if k >= n]))
        cut_line = next(line for k, line in e.lines if k == n)
        ends_here = n == e.start or cut_line[:col].strip()
        row = parse_json(e.text(n, col), self.name, e.start, n if ends_here else n - 1)
        if row.error is not None:
            row.error += f" (it does not close before line {n}, where the next row seems to start)"
        return row


CHECK_MIN = 4096  # bytes of an open element before its text is first searched for the next row
# the keys that mark a row of some format (formats.FORMATS), as JSON text: where a row may start
_ROW_KEYS = tuple(json.dumps(key).encode() for f in FORMATS for key in f.fields)


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
