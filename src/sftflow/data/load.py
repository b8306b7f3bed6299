"""Read raw example files row by row, keeping the file and line of every row.

Supported: JSONL, JSON (array, or object of arrays), CSV/TSV (quoted multi-line fields),
Parquet, and folders saved by `datasets.save_to_disk`. Rows are yielded lazily where the
format allows (JSONL, CSV, Parquet batches), so memory stays flat in the input size.
A row that cannot even be parsed comes out as a `RawRow` with `error` set, never raised:
the caller puts it in rejects.jsonl with its line.
"""

from __future__ import annotations

import csv
import glob
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftflow.errors import SftflowError

# JSON may escape half of a UTF-16 pair ("\ud800"): text that no UTF-8 file can hold, so such rows are
# rejected here rather than crashing the writer of rejects.jsonl or the spool later.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE = "invalid Unicode: a lone surrogate escape (\\ud800-\\udfff) that UTF-8 cannot hold"
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


@dataclass
class RawRow:
    file: str
    line: int  # 1-based line for JSONL/CSV/JSON arrays; 1-based row number for Parquet and datasets
    row: Any = None
    error: str | None = None
    field: str | None = None


def resolve_sources(pattern: str, root: Path) -> list[Path]:
    """A path, folder or glob (relative to the config) → the files it names, sorted."""
    p = Path(pattern).expanduser()
    full = p if p.is_absolute() else root / p
    if any(ch in pattern for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(full), recursive=True) if Path(f).is_file())
        if not files:
            raise SftflowError(f"data.sources: {pattern!r} matches no files under {root}")
        return files
    if not full.exists():
        raise SftflowError(f"data.sources: {full} not found; check the path (relative to the config file)")
    if full.is_dir() and not (full / "dataset_info.json").exists() and not (full / "dataset_dict.json").exists():
        files = sorted(f for f in full.rglob("*") if f.suffix.lower() in SUFFIXES and f.is_file())
        if not files:
            raise SftflowError(f"data.sources: folder {full} holds no .jsonl/.json/.csv/.tsv/.parquet files")
        return files
    return [full]


def read_rows(path: Path) -> Iterator[RawRow]:
    if path.is_dir():
        yield from _read_hf_dataset(path)
        return
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SftflowError(f"{path}: unsupported file type {path.suffix!r}; use .jsonl, .json, .csv, .tsv or .parquet")
    try:
        if kind == "jsonl":
            yield from _read_jsonl(path)
        elif kind == "json":
            yield from _read_json(path)
        elif kind in ("csv", "tsv"):
            yield from _read_csv(path, "\t" if kind == "tsv" else ",")
        else:
            yield from _read_parquet(path)
    except PermissionError as err:
        raise SftflowError(f"{path}: cannot read ({err.strerror}); check the file's permissions") from err


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    name = str(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield RawRow(name, lineno, error=f"invalid UTF-8 at byte {err.start}")
                continue
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                yield RawRow(name, lineno, error=f"invalid JSON: {err.msg} at column {err.colno}")
                continue
            except RecursionError:
                yield RawRow(name, lineno, error="invalid JSON: nested too deeply")
                continue
            if _SURROGATE_ESCAPE_BYTES.search(raw) and not _encodable(row):
                yield RawRow(name, lineno, error=LONE_SURROGATE)
                continue
            yield RawRow(name, lineno, row)


def _encodable(value) -> bool:
    """True when every string in a parsed row can be written as UTF-8 (no lone surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _read_json(path: Path) -> Iterator[RawRow]:
    """A JSON array is scanned item by item so each row keeps its line number."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SftflowError(f"{path}: not UTF-8 text (byte {err.start}); re-encode the file as UTF-8") from err
    if not text.strip():
        return  # an empty file holds no rows, as an empty .jsonl or .csv
    if _SURROGATE_ESCAPE.search(text):
        for r in _read_json_text(text, path):
            yield r if r.error is not None or _encodable(r.row) else RawRow(r.file, r.line, error=LONE_SURROGATE)
        return
    yield from _read_json_text(text, path)


def _read_json_text(text: str, path: Path) -> Iterator[RawRow]:
    name = str(path)
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if text.startswith("[", pos):
        yield from _scan_array(text, pos, decoder, name)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SftflowError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err
    except RecursionError as err:
        raise SftflowError(f"{path}: invalid JSON: nested too deeply") from err
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        # object of arrays: {"train": [...], ...} or columnar {"prompt": [...], "completion": [...]}
        lengths = {len(v) for v in data.values()}
        columnar = len(lengths) == 1 and not any(isinstance(x, dict) for v in data.values() for x in v)
        if columnar:
            keys = list(data)
            for i in range(lengths.pop()):
                yield RawRow(name, i + 1, {k: data[k][i] for k in keys})
        else:
            n = 0
            for rows in data.values():
                for row in rows:
                    n += 1
                    yield RawRow(name, n, row)
        return
    if isinstance(data, dict):
        yield RawRow(name, 1, data)
        return
    raise SftflowError(f"{path}: expected a JSON array of rows or an object of arrays, got {type(data).__name__}")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _scan_array(text: str, pos: int, decoder: json.JSONDecoder, name: str) -> Iterator[RawRow]:
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        return
    while pos < len(text):
        line = text.count("\n", 0, pos) + 1
        try:
            row, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            yield RawRow(name, err.lineno, error=f"invalid JSON: {err.msg} at column {err.colno}; rest of file unreadable")
            return
        except RecursionError:
            yield RawRow(name, line, error="invalid JSON: nested too deeply; rest of file unreadable")
            return
        yield RawRow(name, line, row)
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif text.startswith("]", pos):
            return
        else:
            line = text.count("\n", 0, pos) + 1
            yield RawRow(name, line, error="invalid JSON: expected ',' or ']' between rows; rest of file unreadable")
            return
    yield RawRow(name, text.count("\n") + 1, error="invalid JSON: array not closed (truncated file?)")


def _read_csv(path: Path, delimiter: str) -> Iterator[RawRow]:
    name = str(path)
    csv.field_size_limit(sys.maxsize)
    # surrogateescape: a bad byte spoils only its own row (rejected below), not the rest of the file
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise SftflowError(f"{path}:1: cannot read the header: {err}") from err
        if not _utf8(header):
            raise SftflowError(f"{path}:1: the header is not UTF-8 text; re-encode the file as UTF-8")
        header = [h.strip() for h in header]
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield RawRow(name, start, error=f"malformed CSV: {err}")
                continue
            if not any(v.strip() for v in values):
                continue
            if not _utf8(values):
                yield RawRow(name, start, error="invalid UTF-8")
                continue
            if len(values) != len(header):
                yield RawRow(name, start, error=f"has {len(values)} fields, header has {len(header)} (unbalanced quotes?)")
                continue
            yield RawRow(name, start, dict(zip(header, values, strict=True)))


def _utf8(values: list[str]) -> bool:
    try:
        "".join(values).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    name = str(path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise SftflowError(f"{path}: not a readable Parquet file ({err})") from err
    n = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield RawRow(name, n, row)


def _read_hf_dataset(path: Path) -> Iterator[RawRow]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as err:
        raise SftflowError(f"{path}: not a dataset saved with datasets.save_to_disk ({err})") from err
    parts = ds.items() if isinstance(ds, datasets.DatasetDict) else [(None, ds)]
    for split, part in parts:
        name = f"{path}[{split}]" if split else str(path)
        for i, row in enumerate(part):
            yield RawRow(name, i + 1, row)
