"""`sftflow audit`: answers from the provenance ledger, for a reviewer or an auditor.

    sftflow audit sftflow.yaml                       # fates per source, training runs
    sftflow audit sftflow.yaml --example 3f2a9c      # where an example came from, what happened to it
    sftflow audit sftflow.yaml --run quickstart      # which examples (and sources) a run trained on
    sftflow audit sftflow.yaml --file raw/a.jsonl    # which rows of a file were dropped, and why
    ... --output audit.csv | audit.json              # export the rows

Each query returns a list of flat dicts, so every answer exports the same way.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sftflow.data.account.ledger import Ledger
from sftflow.data_folder import LEDGER, check_published
from sftflow.errors import SftflowError
from sftflow.io import csv_row


def open_ledger(data_dir: Path) -> Ledger:
    check_published(data_dir)  # a half-published folder's ledger may not describe its splits
    path = data_dir / LEDGER
    if not path.exists():
        raise SftflowError(f"{path} not found; run `sftflow prepare` first")
    return Ledger(path)


def summary(ledger: Ledger) -> list[dict]:
    """Fate counts per source file (prepare stage), then one row per training run."""
    rows = ledger.query(
        "SELECT source_file AS file, decision, count(*) AS rows FROM decisions WHERE stage = 'prepare' "
        "GROUP BY source_file, decision ORDER BY source_file, decision"
    )
    runs = ledger.query(
        "SELECT run_id, name, datetime(started_at, 'unixepoch') AS started, data_fingerprint, train_examples, "
        "method, model FROM runs ORDER BY started_at"
    )
    return rows + [{"file": "(run)", "decision": r["run_id"], "rows": r["train_examples"], **r} for r in runs]


def example(ledger: Ledger, example_id: str) -> list[dict]:
    """Every source row that produced this example (id or unique prefix), every decision about it, and the
    rows removed as its duplicates."""
    ids = [r["id"] for r in ledger.query("SELECT DISTINCT id FROM examples WHERE id LIKE ?", (example_id + "%",))]
    if not ids:
        raise SftflowError(f"example {example_id!r} is not in the ledger (ids are the 16-hex `id` of each record)")
    if len(ids) > 1:
        raise SftflowError(f"example id prefix {example_id!r} is ambiguous ({len(ids)} matches); give more characters")
    return ledger.query(
        "SELECT d.example_id AS id, d.source_file AS file, d.source_line AS line, e.source_format AS format, "
        "e.origin, d.stage, d.decision, d.reason, d.detail, d.run_id, datetime(d.at, 'unixepoch') AS at "
        "FROM decisions d LEFT JOIN examples e ON e.id = d.example_id AND e.source_file IS d.source_file "
        "AND e.source_line IS d.source_line WHERE d.example_id = ? "
        "OR (d.decision = 'duplicate' AND d.reason LIKE ?) ORDER BY d.rowid",
        (ids[0], f"%duplicate of {ids[0]}%"),
    )


def run(ledger: Ledger, run: str) -> list[dict]:
    """The examples a training run used, with the source row each came from (run id, or name for the latest)."""
    found = ledger.query("SELECT run_id FROM runs WHERE run_id = ? OR name = ? ORDER BY started_at DESC", (run, run))
    if not found:
        known = ", ".join(r["run_id"] for r in ledger.query("SELECT run_id FROM runs")) or "none yet"
        raise SftflowError(f"run {run!r} is not in the ledger (runs: {known})")
    run_id = found[0]["run_id"]
    return ledger.query(
        "SELECT d.run_id, d.example_id AS id, e.source_file AS file, e.source_line AS line, e.origin "
        "FROM decisions d JOIN decisions k ON k.example_id = d.example_id AND k.stage = 'split' "
        "JOIN examples e ON e.id = d.example_id AND e.source_file = k.source_file AND e.source_line = k.source_line "
        "WHERE d.run_id = ? AND d.decision = 'trained-on' ORDER BY e.source_file, e.source_line",
        (run_id,),
    )


def dropped(ledger: Ledger, file: str) -> list[dict]:
    """Rows of a source file that did not make it into the data: rejected, filtered, duplicate, unused."""
    files = [r["f"] for r in ledger.query("SELECT DISTINCT source_file AS f FROM decisions WHERE source_file IS NOT NULL")]
    match = [f for f in files if f == file or f.endswith("/" + file.lstrip("./"))]
    if not match:
        raise SftflowError(f"file {file!r} is not in the ledger (sources: {', '.join(files) or 'none'})")
    return ledger.query(
        "SELECT source_file AS file, source_line AS line, decision, reason, detail, example_id AS id "
        "FROM decisions WHERE source_file = ? AND stage = 'prepare' AND decision != 'kept' ORDER BY source_line",
        (match[0],),
    )


def export(rows: list[dict], path: Path) -> Path:
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    elif path.suffix.lower() == ".csv":
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(csv_row(r) for r in rows)  # file names, judge reasons, fields: formulas become text
    else:
        raise SftflowError(f"--output {path}: use a .csv or .json file name")
    return path
