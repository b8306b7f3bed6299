"""Small file helpers: atomic writes (temp file + rename) so an interrupted stage never
leaves a half-written output behind, JSONL reading with file:line errors, and CSV cells
that spreadsheets show as text, and where sftflow's cache is."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from sftflow.errors import SftflowError


def cache_root() -> Path:
    """sftflow's cache (tiny model, converted GGUF models, offline wheels, llama.cpp's converter, logs of
    commands run outside a project): `$SFTFLOW_CACHE`, default ~/.cache/sftflow."""
    return Path(os.environ.get("SFTFLOW_CACHE") or Path.home() / ".cache" / "sftflow").expanduser()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A value for a CSV export that is opened in a spreadsheet: text that Excel or LibreOffice
    would run as a formula (it starts with = + - @, a tab or a carriage return) gets a leading
    apostrophe, so `=HYPERLINK(...)` in a note is shown, not run (OWASP "CSV injection").
    Numbers and other values pass unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def csv_row(row: dict) -> dict:
    return {k: csv_cell(v) for k, v in row.items()}


def read_jsonl(path: str | Path) -> Iterator[dict]:
    path = Path(path)
    if not path.exists():
        raise SftflowError(f"{path}: not found; run the stage that writes it first (e.g. `sftflow prepare`)")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise SftflowError(f"{path}:{lineno}: invalid JSON ({err.msg}); re-run the stage that wrote it") from err


MAX_PREVIEW = 2000  # characters of a raw row kept where it is shown (rejects.jsonl)


def preview(value, limit: int = MAX_PREVIEW) -> str:
    """A raw row (its text, its bytes or its parsed value) as bounded text that can be written as UTF-8:
    a broken row's raw text in rejects.jsonl, never the whole of a huge row."""
    if isinstance(value, bytes):
        value = value[: limit * 4].decode("utf-8", "backslashreplace")
    elif not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False, default=str)
        except RecursionError:
            return "(nested too deeply to show)"
    text = value if len(value) <= limit else value[:limit] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def display_path(path: str | Path, root: Path) -> str:
    """How a file is named to the user: relative to the project folder when inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
