"""Damaged data files whose true record count is known because this module wrote them.

The oracle for "nothing lost": `make_file` returns the bytes of a JSONL, JSON-array or CSV/TSV
file and how many records it holds, counted while writing, never by parsing. Faults are the
ones users meet: bad values, missing brackets, stray quotes, truncation, bad bytes, NULs,
deep nesting, lone surrogate escapes, blank lines, mixed line ends, BOMs, UTF-16/32.

    python tests/filegen.py --files 10000             # the soak: every file through the reader and its account
    python tests/filegen.py --files 10000 --prepare   # the same through prepare, 50 files to a project
"""

from __future__ import annotations

import json
import random
from collections import Counter

WORDS = ["order", "refund", "the", "laptop", "won't", "turn", "on", "é", "日本", "a,b", "x]y", "{z}", "say \"hi\"",
         "tab\there", "line\nbreak", "back\\slash", "50%", "🙂", ""]
JSONL_FAULTS = ["good"] * 6 + ["bad_value", "truncated", "bad_utf8", "nul", "deep", "surrogate", "scalar", "junk"]
ARRAY_FAULTS = ["good"] * 6 + ["bad_value", "missing_brace", "stray_quote", "scalar", "junk_element"]
CSV_FAULTS = ["good"] * 6 + ["stray_quote", "ragged", "bad_utf8"]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) or "x"


def _row(rng: random.Random) -> dict:
    shape = rng.randrange(3)
    if shape == 0:
        return {"instruction": _text(rng), "input": _text(rng) if rng.random() < 0.3 else "", "output": _text(rng)}
    if shape == 1:
        return {"messages": [{"role": "user", "content": _text(rng)}, {"role": "assistant", "content": _text(rng)}]}
    return {"prompt": _text(rng), "completion": _text(rng)}


def _jsonl(rng: random.Random, faults: Counter) -> tuple[bytes, int]:
    lines, starts = [], []
    for _ in range(rng.randint(0, 40)):
        kind = rng.choice(JSONL_FAULTS)
        if rng.random() < 0.08:
            lines.append(rng.choice([b"", b"   ", b"\t "]))  # blank: not a record
            continue
        good = json.dumps(_row(rng), ensure_ascii=rng.random() < 0.5).encode()
        text = {
            "good": good,
            "bad_value": b'{"instruction": "x", "output": }',
            "truncated": good[: rng.randint(1, len(good) - 1)],
            "bad_utf8": good[:5] + b"\xff\xfe" + good[5:],
            "nul": good[:3] + b"\x00" + good[3:],
            "deep": b"[" * rng.randint(2000, 5000),
            "surrogate": b'{"prompt": "a \\ud800", "completion": "b"}',
            "scalar": rng.choice([b"42", b"null", b'"just text"', b"[]"]),
            "junk": b"not json at all",
        }[kind]
        faults[kind] += 1
        starts.append(sum(len(x) + 2 for x in lines))
        lines.append(text)
    ends = [rng.choice([b"\n", b"\r\n", b"\r"]) for _ in lines]
    data = b"".join(x + e for x, e in zip(lines, ends, strict=True))
    count = sum(1 for x in lines if x.strip())
    if rng.random() < 0.15 and data:  # the file itself cut short: records that began before the cut remain
        cut = rng.randint(0, len(data))
        data, offset, count = data[:cut], 0, 0
        for x, e in zip(lines, ends, strict=True):
            if x.strip() and offset + (len(x) - len(x.lstrip())) < cut:
                count += 1
            offset += len(x) + len(e)
        faults["file_cut"] += 1
    return data, count


def _array(rng: random.Random, faults: Counter) -> tuple[bytes, int]:
    layout = rng.choice(["compact", "line", "pretty"])
    indent = 2 if layout == "pretty" else None
    # rows of one file usually share their shape; some files mix them
    keys = ["instruction", "prompt", "messages"] if rng.random() < 0.3 else [rng.choice(["instruction", "prompt", "messages"])]
    elements, last_kind, last_before = [], "", ""
    for _ in range(rng.randint(0, 30)):
        row = _row(rng)
        while next(iter(row)) not in keys:
            row = _row(rng)
        good = json.dumps(row, indent=indent, ensure_ascii=False)
        kind = rng.choice(ARRAY_FAULTS)
        if faults and kind in ("scalar", "junk_element") and last_kind in ("stray_quote", "missing_brace"):
            # the known limits: a stray quote can merge its row with a non-row element after it, and
            # `{..., "key", "text", {...` reads as a row cut after a key (the likelier fault)
            kind = "good"
        last_before, last_kind = last_kind, kind
        if kind == "bad_value":
            good = good.replace(json.dumps(next(iter(row.values())), indent=indent, ensure_ascii=False), "", 1)
        elif kind == "missing_brace":
            good = good[:-1]
        elif kind == "stray_quote":
            i = good.index('"', good.index(":")) + 1
            good = good[:i] + 'a"b' + good[i:]
        elif kind == "scalar":
            good = rng.choice(["42", "null", '"text"', "true"])
        elif kind == "junk_element":
            good = "junk"
        faults[kind] += 1
        elements.append(good.replace("\n", "\n  ") if indent else good)
    sep = {"compact": ",", "line": ",\n", "pretty": ",\n  "}[layout]
    head, tail = {"compact": ("[", "]"), "line": ("[\n", "\n]\n"), "pretty": ("[\n  ", "\n]\n")}[layout]
    body = sep.join(elements)
    if elements and rng.random() < 0.1:  # a trailing comma
        body += ","
    data = (head + body + tail).encode()
    count = len(elements)
    # cut inside the last element: it stays, broken (the known limit: a cut right after a broken row,
    # one missing its brace or with a stray quote, can merge the two, so that pair is not generated)
    if rng.random() < 0.15 and elements and last_before not in ("missing_brace", "stray_quote"):
        last = len((head + sep.join(elements[:-1]) + (sep if len(elements) > 1 else "")).encode())
        data = data[: rng.randint(last + 1, last + len(elements[-1].encode()))]
        faults["file_cut"] += 1
    return data, count


def _csv(rng: random.Random, faults: Counter, delimiter: str) -> tuple[bytes, int]:
    def cell(text: str) -> str:
        if any(ch in text for ch in f'"\n{delimiter}') or rng.random() < 0.2:
            return '"' + text.replace('"', '""') + '"'
        return text

    lines = [f"prompt{delimiter}completion".encode()]
    count = 0
    for _ in range(rng.randint(0, 40)):
        kind = rng.choice(CSV_FAULTS)
        a, b = _text(rng).replace("\r", " "), _text(rng).replace("\r", " ")
        if kind == "good":
            text = f"{cell(a)}{delimiter}{cell(b)}".encode()
        elif kind == "stray_quote":  # a field opens a quote that never closes
            text = f'"{a.replace(chr(34), "").replace(chr(10), " ")}{delimiter}{b.replace(chr(34), "").replace(chr(10), " ")}'
            text = text.encode()
        elif kind == "ragged":
            text = f"{cell(a)}{delimiter}{cell(b)}{delimiter}extra".encode()
        else:
            good = f"{cell(a)}{delimiter}{cell(b)}".encode()
            text = good[:1] + b"\xff" + good[1:]
        faults[kind] += 1
        count += 1
        lines.append(text)
    end = rng.choice(["\n", "\r\n"]).encode()
    return b"".join(x + end for x in lines), count


def make_file(rng: random.Random) -> tuple[str, bytes, int, Counter]:
    """(suffix, bytes, records in it, faults planted)."""
    faults: Counter = Counter()
    kind = rng.choice(["jsonl", "json", "csv", "tsv"])
    if kind == "jsonl":
        data, count = _jsonl(rng, faults)
    elif kind == "json":
        data, count = _array(rng, faults)
    else:
        data, count = _csv(rng, faults, "," if kind == "csv" else "\t")
    encoding = rng.random()
    if encoding < 0.1:
        codec = rng.choice(["utf-16", "utf-32"])  # with a BOM; the bytes are valid UTF-8 to re-encode
        try:
            data = data.decode("utf-8").encode(codec)
            faults[codec] += 1
        except UnicodeDecodeError:
            pass
    elif encoding < 0.2:
        data = b"\xef\xbb\xbf" + data
        faults["utf8_bom"] += 1
    return kind, data, count, faults


def soak(files: int, seed: int = 0) -> dict:
    """Every generated file through the reader and its account; returns counts by fault kind."""
    import tempfile
    import time
    from pathlib import Path

    from sftflow.data.read import ReadAccount, check_account, read_rows

    rng = random.Random(seed)
    faults: Counter = Counter()
    wrong, crashes, rows = [], [], 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(files):
            kind, data, count, planted = make_file(rng)
            path = Path(tmp) / f"f{i}.{kind}"
            path.write_bytes(data)
            faults.update(planted)
            try:
                account = ReadAccount()
                got = sum(1 for _ in read_rows(path, account))
                check_account(path, path.name, account)
            except Exception as err:  # noqa: BLE001 - counted and reported: a soak must see every failure
                crashes.append((i, kind, repr(err)[:200]))
                continue
            rows += got
            if got != count:
                wrong.append((i, kind, count, got))
    return {"files": files, "rows": rows, "wrong_count": wrong, "crashes": crashes, "faults": dict(faults),
            "seconds": round(time.perf_counter() - start, 1)}


def soak_prepare(files: int, seed: int = 0, per_project: int = 50) -> dict:
    """The same files through `prepare` itself, `per_project` files to a project: per file, rows read
    must equal rows written, and every row read must have exactly one fate."""
    import os
    import tempfile
    import time
    import warnings
    from pathlib import Path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a made-up id: no hub retries
    from sftflow.config import parse_config
    from sftflow.data.prepare import prepare

    warnings.simplefilter("ignore")
    rng = random.Random(seed)
    faults: Counter = Counter()
    wrong, crashes, rows, unaccounted = [], [], 0, 0
    start = time.perf_counter()
    for p in range(0, files, per_project):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "raw").mkdir()
            expected = {}
            for i in range(p, min(p + per_project, files)):
                kind, data, count, planted = make_file(rng)
                (root / "raw" / f"f{i}.{kind}").write_bytes(data)
                expected[f"raw/f{i}.{kind}"] = count
                faults.update(planted)
            # one good file, so a project of only broken files still has something to split
            (root / "raw" / "good.jsonl").write_text("".join(
                json.dumps({"prompt": f"good question {k} about orders", "completion": f"answer {k}"}) + "\n"
                for k in range(60)))
            cfg = parse_config({"data": {"sources": [{"path": "raw"}]}, "model": {"name_or_path": "no-such-model"}},
                               root=root)
            try:
                stats = prepare(cfg, log=lambda m: None)
            except Exception as err:  # noqa: BLE001 - counted and reported
                crashes.append((p, repr(err)[:200]))
                continue
            rows += stats["rows_read"]
            fates = sum(stats[k] for k in ("kept", "rejected", "duplicates", "filtered", "unused"))
            unaccounted += abs(stats["rows_read"] - fates)
            for f, n in expected.items():
                got = stats["files"].get(f, {}).get("read", 0)
                if got != n:
                    wrong.append((f, n, got))
    return {"files": files, "rows": rows, "unaccounted": unaccounted, "wrong_count": wrong, "crashes": crashes,
            "faults": dict(faults), "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prepare", action="store_true", help="through prepare, 50 files to a project")
    args = ap.parse_args()
    out = (soak_prepare if args.prepare else soak)(args.files, args.seed)
    print(json.dumps(out, indent=1))
