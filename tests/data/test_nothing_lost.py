"""Issue 17's cases, each as a user meets it: damaged files that used to lose rows with exit 0.
Every expected count here is the number of rows the test wrote, never what a parser says."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sftflow.config import parse_config
from sftflow.data.prepare import prepare
from sftflow.data.read import (
    ReadAccount,
    ReadOptions,
    check_account,
    read_rows,
    registry,
    resolve_sources,
)
from sftflow.errors import SftflowError

pytestmark = pytest.mark.filterwarnings("ignore:.*(usable examples|test split has only|NOT checked):UserWarning")
quiet = dict(log=lambda m: None)


def alpaca(i: int) -> dict:
    return {"instruction": f"what is the status of order number {i}", "output": f"order {i} ships on day {i % 7}"}


def project(root: Path, sources: list[str], **data):
    return parse_config({"data": {"sources": [{"path": p} for p in sources], **data},
                         "model": {"name_or_path": "no-such-model"}}, root=root)


def prepared(root: Path, name: str, data: bytes, **settings) -> dict:
    (root / "raw").mkdir(exist_ok=True)
    (root / "raw" / name).write_bytes(data)
    stats = prepare(project(root, [f"raw/{name}"], **settings), **quiet)
    assert sum(stats[k] for k in ("kept", "rejected", "duplicates", "filtered", "unused")) == stats["rows_read"]
    return stats


def rejects(root: Path) -> list[dict]:
    return [json.loads(x) for x in (root / "data" / "rejects.jsonl").read_text(encoding="utf-8").split("\n") if x]


def test_json_array_with_one_bad_element_loses_nothing(tmp_path):
    rows = [json.dumps(alpaca(i)) for i in range(10_000)]
    rows[5000] = '{"instruction": "x", "output": }'
    stats = prepared(tmp_path, "a.json", ("[\n" + ",\n".join(rows) + "\n]\n").encode())
    assert (stats["rows_read"], stats["rejected"]) == (10_000, 1)
    [r] = rejects(tmp_path)
    assert r["line"] == 5002 and r["raw"] == '{"instruction": "x", "output": }'
    assert r["reason"] == "invalid JSON: Expecting value at column 32"


@pytest.mark.parametrize("layout", ["compact", "one per line", "pretty"])
def test_json_array_row_missing_its_brace_is_one_reject(tmp_path, layout):
    rows = [json.dumps(alpaca(i), indent=2 if layout == "pretty" else None) for i in range(50)]
    rows[20] = rows[20][:-1]
    sep = "," if layout == "compact" else ",\n"
    got = list(read_rows(_write(tmp_path / "a.json", ("[" + sep.join(rows) + "]").encode())))
    assert len(got) == 50
    assert [r.line for r in got if r.error] == [1 if layout == "compact" else 21 if layout == "one per line" else 81]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_csv_stray_quote_rejects_its_line_and_reads_on(tmp_path):
    lines = ["instruction,output"] + [f"question {i},answer {i}" for i in range(1000)]
    lines[500] = '"question 499,answer 499'
    stats = prepared(tmp_path, "a.csv", ("\n".join(lines) + "\n").encode())
    assert (stats["rows_read"], stats["rejected"]) == (1000, 1)
    [r] = rejects(tmp_path)
    assert r["line"] == 501 and r["raw"] == '"question 499,answer 499'
    assert r["reason"].startswith("unbalanced quotes: a quoted field opened on this line never closes properly")


def test_csv_stray_quote_can_fail_the_file_instead(tmp_path):
    lines = ["instruction,output"] + [f"question {i},answer {i}" for i in range(100)] + ['"oops,x']
    with pytest.raises(SftflowError, match=r"a\.csv:102: .*data\.bad_csv: reject"):
        prepared(tmp_path, "a.csv", ("\n".join(lines + ["a,b"]) + "\n").encode(), bad_csv="fail")


def test_ragged_csv_rejects_each_ragged_row_and_keeps_the_rest(tmp_path):
    lines = ["instruction,output"] + [f"question {i},answer {i}" for i in range(30)]
    for k in (3, 10, 17):
        lines[k] += ",extra"
    stats = prepared(tmp_path, "a.csv", ("\n".join(lines) + "\n").encode())
    assert (stats["rows_read"], stats["rejected"]) == (30, 3)
    assert [r["line"] for r in rejects(tmp_path)] == [4, 11, 18]


def test_cr_only_newlines_are_line_ends(tmp_path):
    data = b"\r".join(json.dumps(alpaca(i)).encode() for i in range(3))
    assert [r.line for r in read_rows(_write(tmp_path / "a.jsonl", data))] == [1, 2, 3]
    data = b"instruction,output\r" + b"\r".join(f"q {i},a {i}".encode() for i in range(3))
    assert [r.row["output"] for r in read_rows(_write(tmp_path / "a.csv", data))] == ["a 0", "a 1", "a 2"]


def test_duplicate_csv_column_names_are_an_error_naming_the_column(tmp_path):
    with pytest.raises(SftflowError, match=r"a\.csv:1: column 'output' appears twice in the header"):
        prepared(tmp_path, "a.csv", b"instruction,output,output\nq,a,b\n")


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_utf16_and_utf32_files_are_read_row_for_row(tmp_path, codec):
    text = "\n".join(json.dumps(alpaca(i), ensure_ascii=False) for i in range(5)) + "\n"
    bom = {"utf-16-be": "\ufeff"}.get(codec, "")
    got = list(read_rows(_write(tmp_path / "a.jsonl", (bom + text).encode(codec))))
    assert [r.row for r in got] == [alpaca(i) for i in range(5)]
    csv_text = "instruction,output\r\n" + "".join(f"q{i} é,a{i}\r\n" for i in range(4))
    assert len(list(read_rows(_write(tmp_path / "a.csv", csv_text.encode(codec))))) == 4


def test_a_symlink_loop_reads_each_file_once(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(json.dumps(alpaca(1)) + "\n")
    os.symlink(raw, raw / "loop")
    assert resolve_sources("raw/**/*.jsonl", tmp_path) == [raw / "a.jsonl"]
    assert resolve_sources("raw", tmp_path) == [raw / "a.jsonl"]
    cfg = project(tmp_path, ["raw", "raw/a.jsonl"])  # also named twice
    stats = prepare(cfg, **quiet)
    assert stats["rows_read"] == 1


def test_json_object_of_arrays_rejects_point_at_their_lines(tmp_path):
    data = {"train": [alpaca(1), {"instruction": 5, "output": "x"}], "more": [alpaca(2), {"output": "y"}]}
    text = json.dumps(data, indent=2)
    got = list(read_rows(_write(tmp_path / "a.json", text.encode())))
    lines = text.split("\n")
    assert len(got) == 4  # every object read (two of them rejected later, by the converter)
    for r in got:  # each row's line is where its object opens in the file
        assert lines[r.line - 1].strip() == "{" and json.loads(_object_at(lines, r.line)) == r.row


def _object_at(lines: list[str], start: int) -> str:
    end = start
    while lines[end - 1].rstrip(",") != "    }":
        end += 1
    return "\n".join(lines[start - 1:end]).rstrip(",")


def test_invalid_json_rejects_keep_their_text_and_column(tmp_path):
    data = json.dumps(alpaca(1)).encode() + b'\n{"instruction": "q", "output": oops}\n'
    prepared(tmp_path, "a.jsonl", data)
    [r] = rejects(tmp_path)
    assert r["line"] == 2 and r["raw"] == '{"instruction": "q", "output": oops}'
    assert r["reason"] == "invalid JSON: Expecting value at column 32"


def test_output_folder_inside_a_source_is_an_error(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl").write_text(json.dumps(alpaca(1)) + "\n")
    cfg = project(tmp_path, ["raw"], output_dir="raw/out")
    with pytest.raises(SftflowError, match="is inside the source 'raw': prepare would read its own outputs"):
        prepare(cfg, **quiet)


def test_a_reader_that_skips_a_row_stops_prepare(tmp_path, monkeypatch):
    """The reconciliation itself: a reader bug that drops a row is caught by the independent line count."""
    real = registry.read_jsonl

    def dropping(path, account, *options):
        for r in real(path, account, *options):
            if r.line != 3:
                yield r

    monkeypatch.setattr(registry, "read_jsonl", dropping)
    with pytest.raises(SftflowError, match=r"a\.jsonl: 5 lines but the reader accounted for 4; lines from 3 on"):
        prepared(tmp_path, "a.jsonl", b"".join(json.dumps(alpaca(i)).encode() + b"\n" for i in range(5)))
    account = ReadAccount()
    list(read_rows(tmp_path / "raw" / "a.jsonl", account))
    with pytest.raises(SftflowError):
        check_account(tmp_path / "raw" / "a.jsonl", "a.jsonl", account)


def test_a_row_over_the_size_limit_is_rejected_not_held(tmp_path):
    small = ReadOptions(max_row_bytes=1000)
    big = json.dumps({"instruction": "q", "output": "x" * 5000})
    got = list(read_rows(_write(tmp_path / "a.jsonl", (big + "\n" + json.dumps(alpaca(1)) + "\n").encode()),
                         options=small))
    assert got[0].error.startswith("row is 0.0 MiB, over the 0 MiB limit") and got[1].row == alpaca(1)
    got = list(read_rows(_write(tmp_path / "a.json", f"[{big},\n{json.dumps(alpaca(1))}]".encode()), options=small))
    assert got[0].error.startswith("row is") and got[1].row == alpaca(1)


def test_soak_script_runs(tmp_path):
    """tests/filegen.py is also the soak's command line."""
    out = subprocess.run([sys.executable, "tests/filegen.py", "--files", "50"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], check=True).stdout
    result = json.loads(out)
    assert result["files"] == 50 and result["wrong_count"] == [] and result["crashes"] == []


def test_a_duplicate_inside_a_prompt_chain_does_not_split_the_prompt(tmp_path):
    """Found by the prepare soak: records with one prompt are chained (1-2, 2-3, 3-4); when record 3
    is a duplicate, dropping its edges left record 4 on its own, and its own group key could send
    it to another split than 1 and 2: the same prompt in train and test."""
    import random

    rng = random.Random(0)
    words = ["parcel", "refund", "label", "courier", "invoice", "warranty", "screen", "battery", "hinge", "charger"]
    rows = []
    for i in range(150):
        prompt = f"question {i}: " + " ".join(rng.choice(words) for _ in range(6))
        answers = [" ".join(rng.choice(words) for _ in range(8)) + f" {i}{k}" for k in range(3)]
        rows += [{"prompt": prompt, "completion": answers[0], "customer": f"a{i}"},
                 {"prompt": prompt, "completion": answers[1], "customer": f"a{i}"},
                 {"prompt": prompt, "completion": answers[1].upper() + "!", "customer": f"b{i}"},  # duplicate of 2
                 {"prompt": prompt, "completion": answers[2], "customer": f"c{i}"}]
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = project(tmp_path, ["raw/a.jsonl"], group_field="customer")
    stats = prepare(cfg, **quiet)  # raised "val/test prompts also appear in train" before the fix
    assert stats["duplicates"] == 150 and stats["leakage"]["exact_prompt_leaks"] == 0
    where: dict[str, set] = {}
    for split in ("train", "val", "test"):
        for line in (cfg.data_dir / f"{split}.jsonl").read_text().splitlines():
            where.setdefault(json.loads(line)["messages"][0]["content"], set()).add(split)
    assert len(where) == 150 and all(len(s) == 1 for s in where.values())


def test_a_single_source_file_beside_the_output_folder_is_fine(tmp_path):
    (tmp_path / "raw.jsonl").write_text("".join(json.dumps(alpaca(i)) + "\n" for i in range(30)))
    stats = prepare(project(tmp_path, ["raw.jsonl"]), **quiet)  # data/ sits beside it, not inside it
    assert stats["rows_read"] == 30
    with pytest.raises(SftflowError, match="inside the source"):
        prepare(project(tmp_path, ["*.jsonl"], output_dir="."), **quiet)


def test_a_one_line_array_longer_than_the_row_limit_is_read_row_by_row(tmp_path):
    """The row size limit counts a row's own text, not the rest of its (one, long) line."""
    rows = [json.dumps(alpaca(i)) for i in range(100)]
    rows[40] = rows[40][:-1]  # a broken row in the middle too
    got = list(read_rows(_write(tmp_path / "a.json", ("[" + ",".join(rows) + "]").encode()),
                         options=ReadOptions(max_row_bytes=2000)))
    assert len(got) == 100 and [r.error is not None for r in got].count(True) == 1 and got[41].row == alpaca(41)


def test_a_row_cut_after_a_key_is_one_reject(tmp_path):
    """Found by the 1M-row bench: a row cut short right after a key (`..., "content"`) was taken for
    a row of its own ("content") followed by the rest."""
    rows = [json.dumps({"messages": [{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": f"a {i}"}]},
                       indent=2).replace("\n", "\n  ") for i in range(20)]
    rows[7] = '{"messages": [{"role": "user", "content": "q 7"}, {"role": "assistant", "content"'
    got = list(read_rows(_write(tmp_path / "a.json", ("[\n  " + ",\n  ".join(rows) + "\n]\n").encode())))
    assert len(got) == 20 and [i for i, r in enumerate(got) if r.error] == [7]
