"""`sftflow audit --output x.csv` writes text from the data (source file names, reasons from an
LLM judge, field names): a cell a spreadsheet would run as a formula is written as text (issue 17)."""

import csv
import json

from tests.test_cli import sftflow


def test_audit_csv_cells_are_never_formulas(tmp_path):
    name = '=HYPERLINK("evil.example","x").jsonl'  # a source file name is the user's text
    rows = [{"messages": [{"role": "user", "content": f"question number {i} about the order"},
                          {"role": "assistant", "content": f"answer number {i} for the customer"}]} for i in range(30)]
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    cfg = tmp_path / "sftflow.yaml"
    cfg.write_text(f"data:\n  sources: [{{path: '{name}'}}]\nmodel: {{name_or_path: m}}\n")
    assert sftflow("prepare", str(cfg), "--no-model").returncode == 0  # no model here: lengths unchecked

    for args in ([], ["--file", name]):
        out = tmp_path / "audit.csv"
        r = sftflow("audit", str(cfg), *args, "--output", str(out))
        assert r.returncode == 0, r.stderr
        table = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
        assert table and all(row["file"] == "'" + name for row in table), table[:2]
        assert not [v for row in table for v in row.values() if v[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert {row["decision"] for row in table} == {"rejected"} and table[0]["line"] == "31"  # numbers stay numbers
    out = tmp_path / "audit.json"  # JSON keeps the exact text
    assert sftflow("audit", str(cfg), "--output", str(out)).returncode == 0
    assert {row["file"] for row in json.loads(out.read_text())} == {name}
