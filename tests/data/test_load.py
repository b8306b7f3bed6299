import json

import pytest

from sftflow.data.read import read_rows, resolve_sources
from sftflow.errors import SftflowError


def rows(path):
    return [(r.line, r.row, r.error) for r in read_rows(path)]


def test_jsonl_lines_errors_bom_and_blank(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{bad json\n{"a": 3}\n\xff\xfe\n')
    got = rows(p)
    assert got[0] == (1, {"a": 1}, None)
    assert got[1][0] == 3 and got[1][2].startswith("invalid JSON")
    assert got[2] == (4, {"a": 3}, None)
    assert got[3][0] == 5 and got[3][2] == "invalid UTF-8 at byte 0"


def test_json_array_keeps_line_numbers(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('[\n  {"a": 1},\n  {"a": 2,\n   "b": 3},\n  {"a": 4}\n]\n')
    assert rows(p) == [(2, {"a": 1}, None), (3, {"a": 2, "b": 3}, None), (5, {"a": 4}, None)]


def test_json_truncated_array_rejects_the_cut_row(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('[{"a": 1},\n{"a": 2')
    got = rows(p)
    assert got[0] == (1, {"a": 1}, None)
    assert got[1][0] == 2 and got[1][2] == "invalid JSON: the array is not closed (truncated file?)"
    assert len(got) == 2


def test_json_object_of_arrays_and_columnar(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"train": [{"a": 1}], "more": [{"a": 2}]}))
    assert [r[1] for r in rows(p)] == [{"a": 1}, {"a": 2}]
    p.write_text(json.dumps({"prompt": ["x", "y"], "completion": ["1", "2"]}))
    assert [r[1] for r in rows(p)] == [{"prompt": "x", "completion": "1"}, {"prompt": "y", "completion": "2"}]


def test_csv_multiline_quotes_and_ragged_rows(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text('prompt,completion\n"line one\nline two",ok\nsolo\n"a, b",c\n')
    got = rows(p)
    assert got[0] == (2, {"prompt": "line one\nline two", "completion": "ok"}, None)
    assert got[1][0] == 4 and "has 1 fields, header has 2" in got[1][2]
    assert got[2] == (5, {"prompt": "a, b", "completion": "c"}, None)


def test_tsv_parquet_and_hf_dataset(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text("prompt\tcompletion\nx\ty\n")
    assert rows(p) == [(2, {"prompt": "x", "completion": "y"}, None)]
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}])
    ds.to_parquet(str(tmp_path / "a.parquet"))
    assert [r[:2] for r in rows(tmp_path / "a.parquet")] == [(1, {"prompt": "p1", "completion": "c1"}),
                                                              (2, {"prompt": "p2", "completion": "c2"})]
    ds.save_to_disk(str(tmp_path / "hf"))
    assert len(rows(tmp_path / "hf")) == 2


def test_resolve_sources(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.jsonl").write_text("")
    (tmp_path / "d" / "notes.txt").write_text("")
    assert resolve_sources("d", tmp_path) == [tmp_path / "d" / "x.jsonl"]
    assert resolve_sources("d/*.jsonl", tmp_path) == [tmp_path / "d" / "x.jsonl"]
    with pytest.raises(SftflowError, match="not found"):
        resolve_sources("nope.jsonl", tmp_path)
    with pytest.raises(SftflowError, match="matches no files"):
        resolve_sources("d/*.csv", tmp_path)
    with pytest.raises(SftflowError, match="unsupported file type '.txt'"):
        list(read_rows(tmp_path / "d" / "notes.txt"))
