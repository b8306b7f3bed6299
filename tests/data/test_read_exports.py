"""Issue 30's "tried as a new user would" cases: real exports (an API dump that wraps its rows, a
European spreadsheet's CSV, a Windows editor's JSONL, compressed files, trailing commas), each read
through `prepare` as typed in a config. Every file is written from Python objects here, so the
expected rows and counts never come from the parser under test."""

import bz2
import csv
import gzip
import io
import json
import lzma
import warnings
from pathlib import Path

import pytest

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.data.read import READERS, iter_sources, read_rows, supported
from sftflow.data.read.registry import has_data_suffix
from sftflow.data.read.text import COMPRESSIONS, guess_encoding
from sftflow.errors import SftflowError, SftflowWarning

pytestmark = pytest.mark.filterwarnings("ignore:.*(usable examples|test split has only|NOT checked|mixes row):UserWarning")
quiet = dict(log=lambda m: None)
# accented letters, typographic quotes, the euro sign: what a French or German spreadsheet writes
WORDS = ["café", "Straße", "naïve", "l’été", "“quoted”", "10 €", "Grüße", "déjà vu", "señor", "œuvre"]


def row(i: int) -> dict:
    w = WORDS[i % len(WORDS)]
    return {"prompt": f"question {i}: what does {w} mean in order {i}?", "completion": f"answer {i}: {w} means item {i}"}


def project(root: Path, source: dict):
    return parse_config({"data": {"sources": [source]}, "model": {"name_or_path": "no-such-model"}}, root=root)


def prepared(root: Path, name: str, data: bytes, **source) -> dict:
    (root / "raw").mkdir(exist_ok=True)
    (root / "raw" / name).write_bytes(data)
    stats = prepare(project(root, {"path": f"raw/{name}", **source}), **quiet)
    counts = stats["files"][f"raw/{name}"]
    return {"read": counts.get("read", 0), "rejected": counts.get("rejected", 0)}


def rows_of(path: Path) -> list:
    return [r.row for r in read_rows(path)]


def jsonl(rows: list[dict], encoding: str = "utf-8") -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(encoding)


def delimited(rows: list[dict], delimiter: str) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


# ---------------------------------------------------------------- JSON that wraps its rows


def test_json_that_wraps_its_rows_is_read_with_field(tmp_path):
    """Before: one row, rejected as `unknown format (fields: data, version)`."""
    rows = [row(i) for i in range(100)]
    data = json.dumps({"version": 2, "data": rows}, indent=2, ensure_ascii=False).encode()
    got = prepared(tmp_path, "dump.json", data, field="data")
    assert (got["read"], got["rejected"]) == (100, 0)


def test_json_that_wraps_its_rows_without_field_names_the_key(tmp_path):
    data = json.dumps({"version": 2, "data": [row(i) for i in range(100)]}).encode()
    with pytest.raises(SftflowError, match=r"dump\.json: one JSON object whose 'data' holds a list of 100 records; "
                                           r"set field: data on its data.sources entry"):
        prepared(tmp_path, "dump.json", data)


def test_field_rows_keep_their_lines_and_other_keys_are_structure(tmp_path):
    text = '{\n  "version": 2,\n  "meta": {"a": [1, 2]},\n  "data": [\n    {"prompt": "p1", "completion": "c1"},\n' \
           '    {"prompt": "p2",\n     "completion": "c2"}\n  ]\n}\n'
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "d.json").write_text(text)
    [source] = iter_sources(project(tmp_path, {"path": "raw/d.json", "field": "data"}).data.sources[0], tmp_path)
    got = list(source.rows())
    assert [(r.line, r.row) for r in got] == [(5, {"prompt": "p1", "completion": "c1"}),
                                              (6, {"prompt": "p2", "completion": "c2"})]


@pytest.mark.parametrize("case, message", [
    ({"path": "raw/d.json", "field": "rows"}, r"field: 'rows' is not a key of the file's object; it has 'version', 'data'"),
    ({"path": "raw/d.json", "field": "version"}, r"field: 'version' holds a int, not a list of rows"),
    ({"path": "raw/d.jsonl", "field": "data"}, r"field: 'data' applies to \.json files"),
])
def test_field_mistakes_are_one_line(tmp_path, case, message):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "d.json").write_text(json.dumps({"version": 2, "data": [row(1)]}))
    (tmp_path / "raw" / "d.jsonl").write_bytes(jsonl([row(1)]))
    with pytest.raises(SftflowError, match=message):
        prepare(project(tmp_path, case), **quiet)


# ---------------------------------------------------------------- CSV delimiters


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_csv_delimiter_is_sniffed(tmp_path, delimiter):
    """Before: a `;` file was rejected row by row as `unknown format (fields: prompt;completion)`."""
    rows = [row(i) for i in range(200)]
    rows[3]["completion"] = "one, two; three\tfour"  # every candidate inside a quoted field
    rows[4]["completion"] = "a line\nand another"
    got = prepared(tmp_path, "export.csv", delimited(rows, delimiter))
    assert (got["read"], got["rejected"]) == (200, 0)
    assert rows_of(tmp_path / "raw" / "export.csv") == rows


def test_tsv_is_read_by_its_suffix(tmp_path):
    rows = [{"prompt": "a, b; c", "completion": "x"}, {"prompt": "d", "completion": "e; f, g"}]
    (tmp_path / "a.tsv").write_bytes(delimited(rows, "\t"))
    assert rows_of(tmp_path / "a.tsv") == rows


# ---------------------------------------------------------------- encodings


def test_cp1252_jsonl_is_read_and_the_guess_named_once(tmp_path):
    """Before: every row with an accent was rejected as `invalid UTF-8`."""
    rows = [row(i) for i in range(60)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = prepared(tmp_path, "win.jsonl", jsonl(rows, "cp1252"))
    assert (got["read"], got["rejected"]) == (60, 0)
    said = [str(w.message) for w in caught if issubclass(w.category, SftflowWarning) and "cp1252" in str(w.message)]
    assert said == ["raw/win.jsonl: not UTF-8; read as cp1252 (a guess from its bytes). If that is wrong, set "
                    "encoding: on its data.sources entry, or re-encode the file as UTF-8"]
    assert rows_of(tmp_path / "raw" / "win.jsonl") == rows


def test_named_encoding_is_used_without_a_warning(tmp_path):
    rows = [row(i) for i in range(20)]
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.csv").write_bytes(delimited(rows, ";").decode().encode("cp1252"))
    [source] = iter_sources(project(tmp_path, {"path": "raw/a.csv", "encoding": "cp1252"}).data.sources[0], tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.row for r in source.rows()] == rows


def test_encoding_utf8_turns_the_guess_off(tmp_path):
    """A file named UTF-8 is read as UTF-8: a row with bytes that are not UTF-8 is rejected on its own."""
    rows = [row(i) for i in range(5)]
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl").write_bytes(jsonl(rows, "cp1252"))
    [source] = iter_sources(project(tmp_path, {"path": "raw/a.jsonl", "encoding": "utf-8"}).data.sources[0], tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = list(source.rows())
    accented = [i for i, r in enumerate(rows) if not json.dumps(r, ensure_ascii=False).isascii()]
    assert [i for i, r in enumerate(got) if r.error and r.error.startswith("invalid UTF-8")] == accented


def test_unknown_encoding_is_a_config_error(tmp_path):
    with pytest.raises(SftflowError, match="unknown encoding 'utf-9'"):
        project(tmp_path, {"path": "a.jsonl", "encoding": "utf-9"})


@pytest.mark.parametrize("data, expected", [
    ("café".encode("cp1252"), "cp1252"),
    ("café".encode(), None),
    (b"caf\xe9 \x81", "latin-1"),  # a byte cp1252 leaves undefined
    (b"plain ascii", None),
    ("café".encode() + b" \xff damaged", None),  # UTF-8 with a damaged line stays UTF-8
    (b"x" * ((1 << 20) - 1) + "é".encode(), None),  # a UTF-8 sequence cut by the block's end
    (b"\xef\xbb\xbfcafe \xe9", None),  # a UTF-8 BOM decides
])
def test_encoding_guess(tmp_path, data, expected):
    (tmp_path / "a.jsonl").write_bytes(data)
    assert guess_encoding(tmp_path / "a.jsonl") == expected


# ---------------------------------------------------------------- line noise


def test_jsonl_lines_ending_in_a_comma_are_read_with_one_warning(tmp_path):
    """Before: each was rejected as `invalid JSON: Extra data`."""
    rows = [row(i) for i in range(30)]
    lines = [json.dumps(r, ensure_ascii=False) + ("," if i % 10 == 3 else "") for i, r in enumerate(rows)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = prepared(tmp_path, "a.jsonl", ("\n".join(lines) + "\n").encode())
    assert (got["read"], got["rejected"]) == (30, 0)
    said = [str(w.message) for w in caught if "comma" in str(w.message)]
    assert said == ["raw/a.jsonl: 3 line(s) end with a comma after the row (first: line 4); they were read without it"]


def test_a_broken_line_with_a_comma_is_still_one_reject(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"prompt": "p", "completion": ,\n' + json.dumps(row(1)) + "\n")
    got = list(read_rows(tmp_path / "a.jsonl"))
    assert got[0].error.startswith("invalid JSON") and got[1].row == row(1)


# ---------------------------------------------------------------- compressed files


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("name, make", [
    ("a.jsonl.gz", lambda rows: gzip.compress(jsonl(rows))),
    ("a.json.gz", lambda rows: gzip.compress(json.dumps(rows, indent=1, ensure_ascii=False).encode())),
    ("a.csv.gz", lambda rows: gzip.compress(delimited(rows, ";"))),
    ("a.jsonl.zst", lambda rows: _zstd(jsonl(rows))),
    ("a.json.zst", lambda rows: _zstd(json.dumps(rows).encode())),
    ("a.jsonl.bz2", lambda rows: bz2.compress(jsonl(rows))),
    ("a.csv.xz", lambda rows: lzma.compress(delimited(rows, "\t"))),
])
def test_compressed_files_are_read_and_accounted(tmp_path, name, make):
    rows = [row(i) for i in range(150)]
    got = prepared(tmp_path, name, make(rows))
    assert (got["read"], got["rejected"]) == (150, 0)  # prepare also held the rows against the lines
    assert rows_of(tmp_path / "raw" / name) == rows


def test_a_folder_finds_compressed_files_and_a_damaged_one_is_one_line(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl.gz").write_bytes(gzip.compress(jsonl([row(1)])))
    (tmp_path / "raw" / "b.jsonl.gz").write_bytes(b"not gzip at all")
    assert [s.display for s in iter_sources("raw", tmp_path)] == ["raw/a.jsonl.gz", "raw/b.jsonl.gz"]
    with pytest.raises(SftflowError, match=r"b\.jsonl\.gz: cannot be decompressed"):
        list(read_rows(tmp_path / "raw" / "b.jsonl.gz"))
    for name in ("c.jsonl.bz2", "d.jsonl.xz"):
        (tmp_path / "raw" / name).write_bytes(b"not compressed at all")
        with pytest.raises(SftflowError, match=rf"{name}: cannot be decompressed"):
            list(read_rows(tmp_path / "raw" / name))


# ---------------------------------------------------------------- the registry


def test_the_supported_list_and_suffix_checks_come_from_the_registry(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SftflowError) as caught:
        list(read_rows(tmp_path / "notes.txt"))
    message = str(caught.value)
    for reader in READERS:
        assert all(s in message for s in reader.suffixes)
        assert all(has_data_suffix(f"org/name{s}") for s in reader.suffixes)
    assert all(c in supported() for c in COMPRESSIONS)
    with pytest.raises(SftflowError, match=r"unsupported file type '\.parquet\.gz'"):
        list(read_rows(tmp_path / "x.parquet.gz"))


def test_json_array_scanner_knows_every_formats_row_keys(tmp_path):
    """The scanner finds where the next row starts inside a broken one by the keys rows start with; they
    come from formats.FORMATS. Before, a private list lacked `completion`, so a stray quote in the first
    row of a compact array whose rows start with it took all 6 rows into one reject."""
    rows = [{"completion": f"answer {i}", "prompt": f"question {i}"} for i in range(6)]
    texts = [json.dumps(r) for r in rows]
    texts[0] = texts[0].replace("answer 0", 'he said "hi')
    (tmp_path / "a.json").write_text("[" + ",".join(texts) + "]")
    got = list(read_rows(tmp_path / "a.json"))
    assert len(got) == 6 and got[0].error is not None and [r.row for r in got[1:]] == rows[1:]
