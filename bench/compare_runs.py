"""Run one small `sftflow run` with two source trees and compare everything it writes.

    python bench/compare_runs.py --base /tmp/base-b/src --new src        # ~2-4 min on 2 CPU cores

For restructures that must not change behaviour: the quickstart project (fewer examples, one
epoch, a few test examples) is run by each tree in the same folder, one after the other, so
paths in the outputs match. Compared: the data splits, stats.json, the ledger's tables,
train_summary.json, eval/metrics.json, eval/predictions.jsonl, metrics.jsonl, the CLI's exit
code and its stdout/stderr; timings, timestamps and run ids (which hold a time) are left out.
Exits 1 when anything differs, and prints what.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

TIMING_KEYS = {"seconds", "test_seconds", "answer_tokens_per_second", "train_runtime", "train_samples_per_second",
               "train_steps_per_second", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second",
               "started_at", "created_at", "at", "run_id", "timings", "elapsed", "duration"}
# seconds, tok/s, ETA and run ids in the printed lines
TIMING_TEXT = [(re.compile(r"\b\d+(\.\d+)?s\b"), "Ns"), (re.compile(r"\b\d+(\.\d+)? s\b"), "N s"), (re.compile(r"[\d,.]+ tok/s"), "N tok/s"),
               (re.compile(r"ETA \S+"), "ETA N"), (re.compile(r"\d{8}T\d{6}"), "TIME"),
               (re.compile(r"[\d,.]+ (examples|rows)/s"), r"N \1/s")]


def timing(key: str) -> bool:
    return key in TIMING_KEYS or key.endswith(("_time", "_runtime", "_per_second"))


def strip(value):
    """A JSON value without its timing fields."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not timing(k)}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def text(value: str) -> str:
    for pattern, repl in TIMING_TEXT:
        value = pattern.sub(repl, value)
    return value


def ledger_tables(path: Path) -> dict:
    db = sqlite3.connect(path)
    try:
        out = {}
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
            cur = db.execute(f"SELECT * FROM {table}")  # noqa: S608 - names read from the file's own schema
            cols = [c[0] for c in cur.description]
            keep = [i for i, c in enumerate(cols) if not timing(c)]
            rows = [tuple(r[i] for i in keep) for r in cur.fetchall()]
            out[table] = {"columns": [cols[i] for i in keep],
                          "rows": sorted(rows, key=lambda r: json.dumps(r, default=str))}
        return out
    finally:
        db.close()


def jsonl(path: Path) -> list:
    return [strip(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def snapshot(project: Path, result: subprocess.CompletedProcess) -> dict:
    run = project / "runs" / "quickstart"
    data = project / "data"
    snap = {"exit code": result.returncode, "stdout": text(result.stdout).splitlines(),
            "stderr": text(result.stderr).splitlines()}
    for split in ("train.jsonl", "val.jsonl", "test.jsonl", "rejects.jsonl"):
        if (data / split).exists():
            snap[f"data/{split}"] = jsonl(data / split)
    snap["data/stats.json"] = strip(json.loads((data / "stats.json").read_text()))
    snap["data/ledger.sqlite"] = ledger_tables(data / "ledger.sqlite")
    snap["train_summary.json"] = strip(json.loads((run / "train_summary.json").read_text()))
    snap["metrics.jsonl"] = jsonl(run / "metrics.jsonl")
    snap["eval/metrics.json"] = strip(json.loads((run / "eval" / "metrics.json").read_text()))
    snap["eval/predictions.jsonl"] = jsonl(run / "eval" / "predictions.jsonl")
    snap["run files"] = sorted(str(p.relative_to(run)) for p in run.rglob("*") if "checkpoints" not in p.parts)
    return snap


def run_tree(src: Path, project: Path, examples: int, as_written: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src.resolve()), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1",
           "COLUMNS": "200"}
    shutil.rmtree(project, ignore_errors=True)
    init = subprocess.run([sys.executable, "-m", "sftflow", "init", str(project), "--examples", str(examples)],
                          env=env, capture_output=True, text=True)
    if init.returncode:
        raise SystemExit(f"init with {src} failed: {init.stderr}")
    if not as_written:
        cfg = yaml.safe_load((project / "sftflow.yaml").read_text())
        cfg["train"]["epochs"] = 1
        cfg["eval"].update({"max_examples": 12, "max_new_tokens": 32})
        (project / "sftflow.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = subprocess.run([sys.executable, "-m", "sftflow", "run", str(project / "sftflow.yaml")], env=env,
                            capture_output=True, text=True)
    check = subprocess.run([sys.executable, "-c", "import sftflow; print(sftflow.__file__)"], env=env,
                           capture_output=True, text=True)
    print(f"{src}: sftflow from {check.stdout.strip()}, exit code {result.returncode}; last line on stderr: "
          f"{(result.stderr.strip().splitlines() or [''])[-1]}")
    return snapshot(project, result)


def diff(a, b, where: str, out: list[str]) -> None:
    if type(a) is not type(b):
        out.append(f"{where}: {a!r} != {b!r}")
    elif isinstance(a, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'new' if k in b else 'base'}")
            else:
                diff(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            diff(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append(f"{where}: {a!r} != {b!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="src folder of the reference tree")
    p.add_argument("--new", type=Path, default=Path(__file__).resolve().parents[1] / "src", help="src folder to check")
    p.add_argument("--work", type=Path, default=Path("/tmp/compare-runs"))
    p.add_argument("--examples", type=int, default=400, help="quickstart examples (sftflow init --examples)")
    p.add_argument("--quickstart", action="store_true",
                   help="the quickstart exactly as `sftflow init` writes it (2,000 examples, its config untouched)")
    args = p.parse_args(argv)
    project = args.work / "quickstart"
    examples = 2000 if args.quickstart else args.examples
    base = run_tree(args.base, project, examples, args.quickstart)
    new = run_tree(args.new, project, examples, args.quickstart)
    problems: list[str] = []
    for key in base:
        diff(base[key], new[key], key, problems)
    for key in base:
        print(f"{'differs' if any(x.startswith(key) for x in problems) else 'same':8} {key}")
    for line in problems[:60]:
        print("  " + line)
    print(f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
