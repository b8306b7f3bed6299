"""Throughput and memory of `sftflow prepare` on generated data with realistic dirt.

    python bench/prepare_throughput.py                      # 10k, 100k and 1M rows
    python bench/prepare_throughput.py --rows 100000 --workers 2
    python bench/prepare_throughput.py --rows 10000 100000 1000000 --formats jsonl json   # JSON arrays vs JSONL
    python bench/prepare_throughput.py --rows 2000 --semantic   # with data.semantic on (pip install -e '.[semantic]')

Each size runs the full data stage (parse, convert, token-length check with the tiny model's
tokenizer, quality scoring, exact + MinHash near-dedup, split, leakage report, ledger, data
card) in a fresh child process, so peak RSS is that run's own. The generated rows are short
support-style exchanges in Alpaca and chat formats with ~5% exact duplicates (case and
punctuation variants), ~3% near duplicates (one word changed), ~1% broken JSON lines and ~2%
low-quality answers. Targets (issue 3, 2 CPU cores): 100k rows ≤ 60 s, 1M rows ≤ 10 min,
memory flat in the size of the text. With `--formats jsonl json` the same rows also run as one
pretty-printed JSON array (the broken lines become broken elements), so the two readers are
compared per row (issue 17: a JSON array within 2x of JSONL). Results go to
bench/results/prepare_throughput.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path

WORDS = ["order", "refund", "router", "camera", "tablet", "phone", "laptop", "charger", "screen", "battery", "warranty", "address", "delivery", "broken", "slow", "late", "missing", "account", "password", "invoice", "subscription", "cancel", "upgrade", "return", "replace", "please", "help", "urgent", "today", "week", "month", "yesterday", "still", "again", "since", "bought", "new", "old", "second", "first", "working", "stopped", "turning", "connect", "wifi", "bluetooth", "update", "app", "website", "email", "support", "store", "price"]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kai", "Lena", "Malik", "Nora", "Omar", "Priya"]
INTENTS = ["refund", "technical_issue", "order_status", "cancel_subscription", "change_address", "question"]
BAD_ANSWERS = ["As an AI language model, I cannot help with that.", "TODO", "N/A",
               "<div>see</div><br><p>attached</p>&nbsp;"]


def message(rng: random.Random) -> str:
    n = min(int(rng.lognormvariate(2.8, 0.6)) + 4, 200)  # long-tailed: median ~20 words, a few ~200
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + rng.choice([".", "!", "?", ""]) + f"\nThanks, {rng.choice(NAMES)}"


def answer(rng: random.Random) -> str:
    return json.dumps({"intent": rng.choice(INTENTS), "product": rng.choice(WORDS[:10]),
                       "urgency": rng.choice(["low", "medium", "high"])})


def generate(path: Path, n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    recent: list[tuple[str, str]] = []
    counts = {"rows": n, "exact_dup": 0, "near_dup": 0, "broken": 0, "low_quality": 0}
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            r = rng.random()
            if r < 0.05 and recent:
                msg, ans = rng.choice(recent)
                msg = msg.upper() if rng.random() < 0.5 else msg.replace(".", " .")
                counts["exact_dup"] += 1
            elif r < 0.08 and recent:
                msg, ans = rng.choice(recent)
                words = msg.split(" ")
                words[rng.randrange(len(words))] = rng.choice(WORDS)
                msg = " ".join(words)
                counts["near_dup"] += 1
            else:
                msg, ans = message(rng), answer(rng)
                if r < 0.10:
                    ans = rng.choice(BAD_ANSWERS)
                    counts["low_quality"] += 1
            recent.append((msg, ans))
            if len(recent) > 1000:
                recent.pop(0)
            if rng.random() < 0.5:
                row = {"instruction": "Classify the customer message as JSON.", "input": msg, "output": ans}
            else:
                row = {"messages": [{"role": "system", "content": "Classify the customer message as JSON."},
                                    {"role": "user", "content": msg}, {"role": "assistant", "content": ans}]}
            line = json.dumps(row)
            if rng.random() < 0.01:
                line = line[: len(line) // 2]
                counts["broken"] += 1
            f.write(line + "\n")
    return counts


CHILD = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
from sftflow.config import load_config
from sftflow.data.prepare import prepare
cfg = load_config(sys.argv[1])
t = time.perf_counter()
stats = prepare(cfg, log=lambda m: None, workers=int(sys.argv[2]))
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "stats": {k: stats[k] for k in ("rows_read", "kept", "rejected", "duplicates", "near_duplicates", "seconds",
                                                  "filtered", "splits")}}))
"""


def as_json_array(jsonl: Path, out: Path) -> None:
    """The same rows as one JSON array, two-space indented as json.dump(indent=2) writes it (broken
    lines are copied as they are: broken elements)."""
    with open(jsonl, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as o:
        o.write("[\n")
        for i, line in enumerate(f):
            line = line.rstrip("\n")
            with contextlib.suppress(json.JSONDecodeError):
                line = json.dumps(json.loads(line), indent=2)
            o.write((",\n" if i else "") + "  " + line.replace("\n", "\n  "))
        o.write("\n]\n")


def run_size(work: Path, n: int, model: str, workers: int, fmt: str = "jsonl", semantic: bool = False) -> dict:
    folder = work / f"rows-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    generated = generate(folder / "raw.jsonl", n)
    gen_s = time.perf_counter() - t
    raw = folder / f"raw.{fmt}"
    if fmt == "json":
        as_json_array(folder / "raw.jsonl", raw)
        (folder / "raw.jsonl").unlink()
    (folder / "sftflow.yaml").write_text(
        f"data:\n  sources: [{{path: {raw.name}}}]\n" + ("  semantic: {enabled: true}\n" if semantic else "")
        + f"model: {{name_or_path: {model}}}\ntrain: {{max_length: 512}}\n")
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder / "sftflow.yaml"), str(workers)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(rows=n, format=fmt, semantic=semantic, rows_per_second=n / result["seconds"], generated=generated,
                  generate_seconds=gen_s, input_mib=raw.stat().st_size / 2**20, workers=workers)
    raw.unlink()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--formats", nargs="+", default=["jsonl"], choices=["jsonl", "json"],
                    help="input formats, each run on the same rows")
    ap.add_argument("--semantic", action="store_true", help="with data.semantic on (sentence embeddings)")
    ap.add_argument("--model", default=None, help="tokenizer for the length check (default: the tiny model)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/sftflow-bench-prepare"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "prepare_throughput.json")
    args = ap.parse_args()
    model = args.model
    if model is None:
        from sftflow.model.tiny import build_tiny_model

        model = str(build_tiny_model(args.work / "tiny-model", log=lambda m: None))
    results = []
    print(f"{'rows':>9} {'format':>6} {'input MiB':>10} {'seconds':>8} {'rows/s':>8} {'peak RSS MiB':>13} "
          f"{'kept':>8} {'dups':>7} {'near':>6} {'filtered':>8} {'rejected':>8}")
    for n in args.rows:
        for fmt in args.formats:
            r = run_size(args.work, n, model, args.workers, fmt, args.semantic)
            s = r["stats"]
            print(f"{n:>9} {fmt:>6} {r['input_mib']:>10.1f} {r['seconds']:>8.1f} {r['rows_per_second']:>8.0f} "
                  f"{r['peak_rss_mib']:>13.0f} {s['kept']:>8} {s['duplicates']:>7} {s['near_duplicates']:>6} "
                  f"{s['filtered']:>8} {s['rejected']:>8}", flush=True)
            results.append(r)
        if len(args.formats) == 2:
            a, b = results[-2:]
            print(f"{'':>9} json/jsonl time per row: {b['seconds'] / a['seconds']:.2f}x", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
