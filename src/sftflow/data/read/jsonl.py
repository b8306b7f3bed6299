"""JSON Lines: one row per line. A line that ends in a stray comma (a JSON array's elements pasted one per
line) is read without it, and one warning line counts them; any other broken line is one reject."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

from sftflow.data.read.account import MAX_ROW_BYTES, RawRow, ReadAccount, too_big
from sftflow.data.read.text import physical_lines, utf8_blocks
from sftflow.errors import SftflowWarning
from sftflow.io import preview

# JSON may escape half of a UTF-16 pair ("\ud800"): text that no UTF-8 file can hold, so such rows are
# rejected here rather than crashing the writer of rejects.jsonl or the spool later.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE = "invalid Unicode: a lone surrogate escape (\\ud800-\\udfff) that UTF-8 cannot hold"


def read_jsonl(path: Path, account: ReadAccount, name: str | None = None,
               max_row_bytes: int = MAX_ROW_BYTES) -> Iterator[RawRow]:
    shown, name = name or str(path), str(path)
    commas: list[int] = []
    for lineno, raw in enumerate(physical_lines(utf8_blocks(path, account.encoding)), start=1):
        if not raw.strip():
            try:
                if not raw.decode("utf-8").strip():
                    account.skip(lineno)
                    continue
            except UnicodeDecodeError:
                pass
        if len(raw) > max_row_bytes:
            yield RawRow(name, lineno, error=too_big(len(raw), max_row_bytes), raw=preview(raw))
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield RawRow(name, lineno, error=f"invalid UTF-8 at byte {err.start}", raw=preview(raw))
            continue
        row = parse_json(raw, name, lineno, lineno)
        if row.error is not None and raw.rstrip().endswith(b","):
            fixed = parse_json(raw.rstrip()[:-1], name, lineno, lineno)
            if fixed.error is None:
                commas.append(lineno)
                row = fixed
        yield row
    if commas:
        warnings.warn(f"{shown}: {len(commas)} line(s) end with a comma after the row (first: line {commas[0]}); "
                      "they were read without it", SftflowWarning, stacklevel=2)


def parse_json(text: bytes, name: str, line: int, end: int, where: str = "") -> RawRow:
    """One row's JSON text → a row, or a reject that keeps the text and where it broke."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        at = f"line {line + err.lineno - 1}, column {err.colno}" if err.lineno > 1 else f"column {err.colno}"
        return RawRow(name, line, error=f"invalid JSON: {err.msg} at {at}{where}", raw=preview(text), end_line=end)
    except UnicodeDecodeError as err:
        return RawRow(name, line, error=f"invalid UTF-8 at byte {err.start}", raw=preview(text), end_line=end)
    except RecursionError:
        return RawRow(name, line, error="invalid JSON: nested too deeply", raw=preview(text), end_line=end)
    if _SURROGATE_ESCAPE.search(text) and not _encodable(row):
        return RawRow(name, line, error=LONE_SURROGATE, raw=preview(text), end_line=end)
    return RawRow(name, line, row, end_line=end)


def _encodable(value) -> bool:
    """True when every string in a parsed row can be written as UTF-8 (no lone surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True
