"""A JSON file that holds one object, read whole: one row; an object of arrays ({"train": [...]}, or
columnar {"prompt": [...], "completion": [...]}); or the array of rows under the key a data source's
`field:` names (an API dump such as {"version": 2, "data": [...]}). Without `field:`, an object that is
no row but holds one list of records stops with a hint naming its key, rather than being read as one
row that every format rejects."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from sftflow.data.read.account import RawRow, ReadAccount
from sftflow.data.read.text import physical_lines, utf8_blocks
from sftflow.errors import SftflowError
from sftflow.formats import FORMATS


def read_json_object(path: Path, account: ReadAccount, field: str | None = None) -> Iterator[RawRow]:
    name = str(path)
    text = b"".join(line + b"\n" for line in physical_lines(utf8_blocks(path, account.encoding)))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SftflowError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise SftflowError(f"{path}: not UTF-8 text (byte {err.start}); re-encode the file as UTF-8, or set "
                           "encoding: on its data.sources entry") from err
    except RecursionError as err:
        raise SftflowError(f"{path}: invalid JSON: nested too deeply") from err
    lines = text.count(b"\n")
    if not isinstance(data, dict):
        raise SftflowError(f"{path}: expected a JSON array of rows or an object of arrays, got {type(data).__name__}")
    if field is not None:
        data = {field: _field(path, data, field)}
    elif not (data and all(isinstance(v, list) for v in data.values())):
        _hint_wrapped(path, data)
        yield RawRow(name, 1, data, end_line=lines)
        return
    starts = _element_lines(text)  # key → line of each element, from the text itself
    lengths = {len(v) for v in data.values()}
    if field is None and len(lengths) == 1 and not any(isinstance(x, dict) for v in data.values() for x in v):
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


def _field(path: Path, data: dict, field: str) -> list:
    if field not in data:
        raise SftflowError(f"{path}: field: {field!r} is not a key of the file's object; it has "
                           f"{', '.join(map(repr, data))}")
    if not isinstance(data[field], list):
        raise SftflowError(f"{path}: field: {field!r} holds a {type(data[field]).__name__}, not a list of rows")
    return data[field]


def _hint_wrapped(path: Path, data: dict) -> None:
    """An object that is no row of any format but holds exactly one list of records: its rows are
    wrapped, and reading the object as one row would reject them all as one."""
    if any(set(f.fields) <= data.keys() for f in FORMATS):
        return
    records = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if len(records) == 1:
        key = records[0]
        raise SftflowError(f"{path}: one JSON object whose {key!r} holds a list of {len(data[key])} records; set "
                           f"field: {key} on its data.sources entry to read them as rows")


def _element_lines(text: bytes) -> dict[str, list[int]]:
    """For an object with arrays: the line where each element of each top-level array starts."""
    out: dict[str, list[int]] = {}
    depth, key, array, expect = 0, None, False, False
    for lineno, line in enumerate(text.split(b"\n"), start=1):
        for m in re.finditer(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},:]|[^\s\[\]{},:"]+', line):
            tok = m.group()
            if depth == 1 and tok.startswith(b'"') and key is None:
                key = json.loads(tok)
                continue
            if depth == 2 and array and expect and tok not in (b",", b"]"):
                out.setdefault(key, []).append(lineno)
                expect = False
            if tok in (b"{", b"["):
                depth += 1
                if depth == 2:  # a top-level value opens: its elements start after '[' and each ','
                    array = expect = tok == b"["
            elif tok in (b"}", b"]"):
                depth -= 1
            elif tok == b"," and depth == 2:
                expect = True
            elif tok == b"," and depth == 1:
                key = None
    return out
