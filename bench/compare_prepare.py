"""Do two sftflow source trees prepare the same data? A check for restructures of the data stage.

    python bench/compare_prepare.py /tmp/base/src src /tmp/cmp [--workers 2] [--variants quickstart,filters]

Writes the quickstart project once (raw files and the tiny model, as `sftflow init` does, with the
first tree) plus an extra source built to reach every filter and reject path: broken and
unconvertible rows, over-long rows, personal data, low-quality answers, rows copied from a
decontamination benchmark, conflicting labels, planted semantic outliers and answers the LLM
judge grades low. Then, per variant (config changes on that project: see VARIANTS; the judge
talks to tests/fake_openai.py on 127.0.0.1), runs `sftflow prepare` with each tree in its own
process, in the same folder one after the other, and compares the outputs:

- train/val/test.jsonl and rejects.jsonl byte for byte, and which files the data folder holds;
- stats.json equal once the timings ("seconds", anywhere) are removed;
- data_card.md equal once the semantic step's "in N s" is masked (a timing);
- ledger.sqlite (and judge_cache.sqlite): every table's rows equal as sorted lists, leaving out
  only the time columns (examples.created_at, decisions.at, runs.started_at, verdicts.at);
- quality_hist.png byte for byte.

Prints one line per variant and output, and exits 1 on any difference.
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

VARIANTS = {
    # the quickstart exactly as `sftflow init` writes it
    "quickstart": {},
    # every per-record filter: quality with PII dropped, decontamination, conflicts resolved, groups
    "filters": {"extra": True, "data": {"quality": {"pii": "drop"}, "decontaminate": ["bench/benchmark.jsonl"],
                                         "conflicts": "best", "group_field": "ticket"}},
    # redaction (rejects' raw text too), truncation instead of rejection, a stricter threshold
    "redact": {"extra": True, "data": {"quality": {"pii": "redact", "threshold": 0.7}, "truncate": True,
                                        "stratify_field": "topic"}},
    # the quality filter off, and source caps and weights (unused rows)
    "caps": {"extra": True, "data": {"quality": {"enabled": False}},
             "sources": {0: {"max_rows": 700, "weight": 1.0}, 1: {"weight": 2.0}, 2: {"weight": 0.5}}},
    # the semantic step: embeddings filter unrelated answers and outliers (needs sftflow[semantic])
    "semantic": {"extra": True, "data": {"semantic": {"enabled": True}, "decontaminate": ["bench/benchmark.jsonl"]}},
    # the LLM judge (tests/fake_openai.py on 127.0.0.1 grades answers ending "WRONG." 1, "meh." 4, others 5)
    "judge": {"extra": True, "judge": True},
}
TIME_COLUMNS = {("examples", "created_at"), ("decisions", "at"), ("runs", "started_at"), ("verdicts", "at")}
REPO = Path(__file__).resolve().parents[1]
SPLIT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl", "rejects.jsonl")


def chat(user: str, answer: str, system: str | None = None, **extra) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": msgs, **extra}


BENCHMARK = [
    chat("What is the boiling point of water at sea level in degrees Celsius?", "100 degrees Celsius."),
    chat("Name the largest planet in the solar system.", "Jupiter is the largest planet in the solar system."),
    chat("Summarise the plot of the story about the lighthouse keeper who counted ships every night until "
         "the winter storm finally came and took the light away from the harbour town.", "A keeper loses his light."),
]


def extra_rows() -> list:
    """Rows that reach every reject and filter path (a list of JSON lines; some deliberately broken)."""
    ok = [chat(f"How do I reset the password of account number {i} on the billing portal?",
               f"Open Settings, choose Security, then Reset password for account {i}; a link arrives by email.",
               ticket=f"T{i % 7}", topic=("billing", "account")[i % 2]) for i in range(40)]
    pii = [chat(f"Who handles refunds for order {i}?", f"Write to refunds{i}@example.com or call +1 415 555 01{i:02d}.",
                ticket="P", topic="billing") for i in range(6)]
    pii.append(chat("Which card did I use?", "The card 4111 1111 1111 1111 was charged.", ticket="P", topic="billing"))
    low = [chat("Can you help me close my account?", "I'm sorry, but as an AI language model I cannot help with that."),
           chat("What are your opening hours?", "hours hours hours hours hours hours hours hours hours hours hours"),
           chat("Explain the refund policy.", "The refund policy is that"),
           chat("Describe the upgrade path.", "asdkj qwpoe zmxnc lkjas poiqw mnbzx"),
           chat("What is the fee for wire transfers?", "TODO: fill in the answer here")]
    long = [chat("Tell me everything about the service.", " ".join(f"word{i}" for i in range(900)), topic="account"),
            chat("Give me the full terms.", "Terms apply. " * 400, topic="billing")]
    contaminated = [BENCHMARK[0],  # its prompt is in the benchmark
                    chat("Tell me the plot: the lighthouse keeper who counted ships every night until the winter "
                         "storm finally came and took the light away.", "He lost the light in a storm.")]
    conflicts = [chat("What is the daily transfer limit?", "The daily transfer limit is 5,000 dollars.", ticket="C"),
                 chat("What is the daily transfer limit?", "The daily transfer limit is 10,000 dollars.", ticket="C")]
    unrelated = [chat(f"How do I reset the password of account number {100 + i} on the billing portal?",
                      "Jupiter is the largest planet and has dozens of moons orbiting it.") for i in range(2)]
    graded = [chat(f"What does the premium plan cost for {n} seats?", f"It costs {9 * n} dollars a month{end}")
              for n, end in ((3, " WRONG."), (4, " WRONG."), (5, " meh."), (6, "."))]  # for the judge variant
    broken = ['{"messages": [{"role": "user", "content": "unterminated"', '[1, 2, 3]', '{"foo": "bar", "baz": 1}',
              json.dumps({"instruction": "Say hi", "output": ""}),
              json.dumps({"messages": [{"role": "robot", "content": "hi"}]}),
              json.dumps({"conversations": [{"from": "human", "value": "hi"}]}),
              json.dumps({"prompt": "p", "completion": 7}), json.dumps({"text": "plain text row"}), ""]
    rows = [*ok, *pii, *low, *long, *contaminated, *conflicts, *unrelated, *graded]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    for k, b in enumerate(broken):  # spread through the file
        lines.insert(3 + 7 * k, b)
    return lines


def make_project(base_src: str, scratch: Path) -> Path:
    """The quickstart project (written once with the first tree) plus the extra source and benchmark."""
    project = scratch / "project"
    if not (project / "sftflow.yaml").exists():
        code = "import sys; from sftflow.project import write_quickstart_project as w; w(sys.argv[1], force=True)"
        subprocess.run([sys.executable, "-c", code, str(project)], check=True, env=_env(base_src))
    (project / "raw" / "extra.jsonl").write_text("\n".join(extra_rows()) + "\n", encoding="utf-8")
    (project / "bench").mkdir(exist_ok=True)
    (project / "bench" / "benchmark.jsonl").write_text("".join(json.dumps(r) + "\n" for r in BENCHMARK))
    return project


def variant_project(project: Path, scratch: Path, name: str, judge_url: str | None = None) -> Path:
    """A project folder for a variant: the raw files and model linked, the config changed as it says. Both
    trees run in this one folder, so the paths written into the outputs are the same."""
    v = VARIANTS[name]
    root = scratch / "runs" / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for entry in ("raw", "bench", "tiny-model"):
        (root / entry).symlink_to(project / entry)
    cfg = yaml.safe_load((project / "sftflow.yaml").read_text())
    data = cfg["data"]
    if v.get("extra"):
        data["sources"].append({"path": "raw/extra.jsonl"})
    for key, value in v.get("data", {}).items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    for k, fields in v.get("sources", {}).items():
        data["sources"][k].update(fields)
    if v.get("judge"):
        data["quality"] = {**data.get("quality", {}), "judge": {"base_url": judge_url, "model": "teacher-1",
                                                                "api_key_env": None, "backoff": 0.01, "concurrency": 2}}
    (root / "sftflow.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return root


def _env(src: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(src).resolve()), "HF_HUB_OFFLINE": "1"}


def run_prepare(src: str, root: Path, workers: int, side: str) -> None:
    cmd = [sys.executable, "-m", "sftflow", "prepare", str(root / "sftflow.yaml"), "--workers", str(workers)]
    done = subprocess.run(cmd, env=_env(src), cwd=root, capture_output=True, text=True)
    log = root / f"prepare.{side}.log"
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"prepare failed with {src} in {root} (see {log}):\n{done.stderr[-2000:]}")


def _untimed(value):
    """stats.json without its timings: every "seconds" key, at any depth."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _card(path: Path) -> str:
    return re.sub(r"(examples embedded with \S+ in) \d+ s", r"\1 N s", path.read_text(encoding="utf-8"))


def _ledger(path: Path) -> dict[str, list]:
    db = sqlite3.connect(path)
    try:
        out = {}
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            cols = [c[1] for c in db.execute(f"PRAGMA table_info({table})") if (table, c[1]) not in TIME_COLUMNS]
            listed = ", ".join(cols)
            out[table] = db.execute(f"SELECT {listed} FROM {table} ORDER BY {listed}").fetchall()
        return out
    finally:
        db.close()


def compare(a: Path, b: Path) -> list[tuple[str, bool, str]]:
    """(output, equal, what was compared) for the two data folders."""
    out = []
    names = sorted(p.name for p in a.iterdir()), sorted(p.name for p in b.iterdir())
    out.append(("files in data/", names[0] == names[1], ", ".join(names[0])))
    for name in SPLIT_FILES:
        x, y = a / name, b / name
        same = x.exists() == y.exists() and (not x.exists() or x.read_bytes() == y.read_bytes())
        lines = x.read_bytes().count(b"\n") if x.exists() else 0
        out.append((name, same, f"{lines} lines, bytes"))
    sa, sb = (_untimed(json.loads((d / "stats.json").read_text())) for d in (a, b))
    out.append(("stats.json", sa == sb, f"{len(sa)} keys, timings removed; filter_reasons {sa['filter_reasons']}"))
    out.append(("data_card.md", _card(a / "data_card.md") == _card(b / "data_card.md"), "text, semantic timing masked"))
    for db in ("ledger.sqlite", "judge_cache.sqlite"):
        if (a / db).exists():
            la, lb = _ledger(a / db), _ledger(b / db)
            sizes = ", ".join(f"{t} {len(rows)}" for t, rows in la.items())
            out.append((db, la == lb, f"rows per table: {sizes}; time columns left out"))
    png = (a / "quality_hist.png").read_bytes() == (b / "quality_hist.png").read_bytes()
    out.append(("quality_hist.png", png, "bytes"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base_src", help="PYTHONPATH of the first tree (e.g. /tmp/base/src)")
    ap.add_argument("new_src", help="PYTHONPATH of the second tree (e.g. src)")
    ap.add_argument("scratch", type=Path, help="a folder for the project and the runs")
    ap.add_argument("--workers", type=int, default=1, help="prepare --workers for both trees")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    args = ap.parse_args()
    project = make_project(args.base_src, args.scratch)
    sys.path.insert(0, str(REPO))
    from tests.fake_openai import FakeOpenAI

    failed = 0
    with FakeOpenAI() as fake:
        for name in args.variants.split(","):
            failed += run_variant(project, args, name, fake.url)
    print("all identical" if not failed else f"{failed} outputs differ")
    return 1 if failed else 0


def run_variant(project: Path, args, name: str, judge_url: str) -> int:
    """Prepare one variant with each tree and compare; returns how many outputs differ."""
    failed = 0
    root = variant_project(project, args.scratch, name, judge_url)
    for side, src in (("base", args.base_src), ("new", args.new_src)):
        run_prepare(src, root, args.workers, side)
        (root / "data").rename(root / f"data.{side}")  # the next run starts from no outputs, as this one did
    for output, same, what in compare(root / "data.base", root / "data.new"):
        failed += not same
        print(f"{name:10s} {output:18s} {'identical' if same else 'DIFFERENT'}  ({what})", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
