"""The file formats sftflow reads, one `Reader` entry each: the suffixes it reads, how it is detected
when a suffix cannot say (a `save_to_disk` folder), and its read function. The suffixes a folder is
searched for, the hub-id check and every "unsupported file type" message are derived from `READERS`,
so adding a format is one entry here (and its module and test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sftflow.data.read.account import MAX_ROW_BYTES, RawRow, ReadAccount
from sftflow.data.read.delimited import read_delimited
from sftflow.data.read.hub import is_saved_dataset, read_saved
from sftflow.data.read.json_array import read_json
from sftflow.data.read.jsonl import read_jsonl
from sftflow.data.read.parquet import read_parquet
from sftflow.data.read.text import COMPRESSIONS, compression_of, decide_encoding
from sftflow.errors import SftflowError


@dataclass(frozen=True)
class ReadOptions:
    """How to read one source's files: its data.sources settings, and data.bad_csv."""

    encoding: str | None = None  # a text file's codec; None: UTF-8 (or UTF-16/32 by BOM), else guessed
    field: str | None = None  # the key of a JSON object whose array holds the rows
    bad_csv: str = "reject"
    name: str | None = None  # how warnings name the file (its path relative to the project)
    max_row_bytes: int = MAX_ROW_BYTES  # a larger row is rejected without being held whole


@dataclass(frozen=True)
class Reader:
    name: str
    suffixes: tuple[str, ...]  # file name endings it reads (lower case)
    read: Callable[[Path, ReadAccount, ReadOptions], Iterator[RawRow]]
    text: bool = True  # decoded as text (any encoding, compressed or not); its rows are held against its lines
    detect: Callable[[Path], bool] | None = None  # for what a suffix cannot name (a folder)
    takes_field: bool = False  # reads data.sources' field:


READERS = (
    Reader("jsonl", (".jsonl", ".ndjson"), lambda p, a, o: read_jsonl(p, a, o.name, o.max_row_bytes)),
    Reader("json", (".json",), lambda p, a, o: read_json(p, a, o.field, o.max_row_bytes), takes_field=True),
    Reader("csv", (".csv",), lambda p, a, o: read_delimited(p, a, None, o.bad_csv, o.max_row_bytes)),
    Reader("tsv", (".tsv",), lambda p, a, o: read_delimited(p, a, "\t", o.bad_csv, o.max_row_bytes)),
    Reader("parquet", (".parquet",), lambda p, a, o: read_parquet(p, a), text=False),
    Reader("save_to_disk", (), lambda p, a, o: read_saved(p, a), text=False, detect=is_saved_dataset),
)


def reader_for(path: Path) -> Reader | None:
    """The reader of a file or folder: by detection, else by its suffix (under a compression's, for text)."""
    for reader in READERS:
        if reader.detect is not None and reader.detect(path):
            return reader
    suffix, comp = _suffix(path)
    return next((r for r in READERS if suffix in r.suffixes and (r.text or not comp)), None)


def _suffix(path: Path) -> tuple[str, str | None]:
    """(the format's suffix, the compression's): `rows.jsonl.gz` → ('.jsonl', '.gz')."""
    comp = compression_of(path)
    return Path(path.stem if comp else path.name).suffix.lower(), comp


def has_data_suffix(name: str) -> bool:
    """True when a name ends like a file some reader reads (so it names no hub dataset)."""
    suffix, comp = _suffix(Path(name))
    return comp is not None or any(suffix in r.suffixes for r in READERS)


def supported() -> str:
    """The readable files, for messages: derived from READERS and COMPRESSIONS."""
    suffixes = [s for r in READERS for s in r.suffixes]
    folders = [r.name for r in READERS if r.detect is not None]
    return (f"{', '.join(suffixes[:-1])} or {suffixes[-1]} files (text formats also compressed: "
            f"{', '.join(s for s in COMPRESSIONS)})" + (f", or {' / '.join(folders)} folders" if folders else ""))


def read_rows(path: Path, account: ReadAccount | None = None, options: ReadOptions = ReadOptions()) -> Iterator[RawRow]:
    """The rows of one file (or save_to_disk folder), in order. `account` (optional) is filled as rows are read."""
    account = account if account is not None else ReadAccount()
    reader = reader_for(path)
    if reader is None:
        shown = "".join(path.suffixes[-2:]) if compression_of(path) else path.suffix or path.name
        raise SftflowError(f"{path}: unsupported file type {shown!r}; sftflow reads {supported()}")
    if options.field is not None and not reader.takes_field:
        raise SftflowError(f"{path}: field: {options.field!r} applies to .json files that wrap their rows in an "
                           "object; remove it from this data.sources entry")
    try:
        if reader.text:
            account.encoding = decide_encoding(path, options.encoding, options.name)
        for r in reader.read(path, account, options):
            account.rows += 1
            if reader.text:
                account.cover(r.line, r.end_line or r.line)
            yield r
    except PermissionError as err:
        raise SftflowError(f"{path}: cannot read ({err.strerror}); check the file's permissions") from err
