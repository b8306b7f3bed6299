"""The data stage: raw files → canonical, deduplicated, split examples with a full account.

    sftflow prepare sftflow.yaml

Writes to `data.output_dir`: train/val/test.jsonl (canonical records), rejects.jsonl (file,
line, field, reason of every row that could not be used), stats.json, data_card.md and
ledger.sqlite. Invariant, checked before anything is written:
kept + rejected + duplicates == rows read.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from sftflow.config import Config
from sftflow.data.dedup import ExactDedup, content_hash, prompt_hash
from sftflow.data.formats import RowError, convert_row
from sftflow.data.ledger import Ledger
from sftflow.data.load import read_rows, resolve_sources
from sftflow.data.split import SPLITS, find_leaks, split_of
from sftflow.errors import SftflowError
from sftflow.io import atomic_write_text, write_json, write_jsonl

MAX_RAW_IN_REJECT = 2000  # characters of the raw row kept in rejects.jsonl


def _display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _raw_preview(row) -> str:
    text = row if isinstance(row, str) else json.dumps(row, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_RAW_IN_REJECT else text[:MAX_RAW_IN_REJECT] + "…"


def prepare(cfg: Config, log=print) -> dict:
    data_dir = cfg.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    fractions = cfg.data.split.model_dump()
    ledger_tmp = data_dir / ".ledger.sqlite.tmp"
    ledger_tmp.unlink(missing_ok=True)
    ledger = Ledger(ledger_tmp)
    dedup = ExactDedup()

    splits: dict[str, list[dict]] = {name: [] for name in SPLITS}
    rejects: list[dict] = []
    per_file: dict[str, Counter] = defaultdict(Counter)
    formats: Counter = Counter()
    missing_group = 0

    for source in cfg.data.sources:
        for path in resolve_sources(source.path, cfg.root):
            file = _display_path(path, cfg.root)
            counts = per_file[file]
            for raw in read_rows(path):
                counts["read"] += 1
                if raw.error is not None:
                    reason, field, fmt = raw.error, raw.field, None
                else:
                    try:
                        fmt, record = convert_row(
                            raw.row,
                            source.format,
                            mapping=source.mapping,
                            system_prompt=cfg.data.system_prompt,
                            allow_text=cfg.data.allow_text,
                        )
                        reason = None
                    except RowError as err:
                        reason, field, fmt = err.reason, err.field, source.format
                if reason is not None:
                    counts["rejected"] += 1
                    rejects.append(
                        {"file": file, "line": raw.line, "field": field, "reason": reason, "raw": _raw_preview(raw.row)}
                    )
                    ledger.decide(None, file, raw.line, "prepare", "rejected", reason, field or "")
                    continue

                record_id = content_hash(record)
                formats[fmt] += 1
                ledger.add_example(record_id, file, raw.line, fmt)
                original = dedup.check(record_id, f"{file}:{raw.line}")
                if original is not None:
                    counts["duplicates"] += 1
                    ledger.decide(record_id, file, raw.line, "prepare", "duplicate", f"duplicate of {original}")
                    continue

                group = None
                if cfg.data.group_field:
                    group = raw.row.get(cfg.data.group_field) if isinstance(raw.row, dict) else None
                    if group is None:
                        missing_group += 1
                group_key = f"group:{group}" if group is not None else f"prompt:{prompt_hash(record)}"
                split = split_of(group_key, cfg.data.seed, fractions)
                counts["kept"] += 1
                out = {
                    "id": record_id,
                    **record,
                    "source": {"file": file, "line": raw.line, "format": fmt, "origin": "human"},
                    "group": str(group) if group is not None else None,
                }
                splits[split].append(out)
                ledger.decide(record_id, file, raw.line, "prepare", "kept")
                ledger.decide(record_id, file, raw.line, "split", split)

    rows_read = sum(c["read"] for c in per_file.values())
    kept = sum(len(v) for v in splits.values())
    duplicates = sum(c["duplicates"] for c in per_file.values())
    if kept + len(rejects) + duplicates != rows_read:  # the promise of this stage; never silently lose a row
        raise RuntimeError(f"row accounting broken: {kept} + {len(rejects)} + {duplicates} != {rows_read}")
    if kept == 0:
        first = f" First reject: {rejects[0]['file']}:{rejects[0]['line']}: {rejects[0]['reason']}" if rejects else ""
        raise SftflowError(f"no usable examples in data.sources ({rows_read} rows read).{first}")

    leaks = find_leaks(splits)
    if leaks:
        sample = ", ".join(f"{a} ~ {b}" for a, b in leaks[:3])
        raise SftflowError(
            f"{len(leaks)} val/test examples share their prompt with a train example ({sample}); "
            "remove data.group_field or make groups cover repeated prompts"
        )

    for name, rows in splits.items():
        write_jsonl(data_dir / f"{name}.jsonl", rows)
    write_jsonl(data_dir / "rejects.jsonl", rejects)
    ledger.close()
    os.replace(ledger_tmp, data_dir / "ledger.sqlite")

    stats = {
        "rows_read": rows_read,
        "kept": kept,
        "rejected": len(rejects),
        "duplicates": duplicates,
        "splits": {name: len(rows) for name, rows in splits.items()},
        "formats": dict(formats),
        "files": {f: dict(c) for f, c in per_file.items()},
        "reject_reasons": dict(
            Counter(f"{r['field']}: {r['reason']}" if r["field"] else r["reason"] for r in rejects).most_common()
        ),
        "missing_group_field": missing_group,
        "seed": cfg.data.seed,
        "fractions": fractions,
    }
    write_json(data_dir / "stats.json", stats)
    atomic_write_text(data_dir / "data_card.md", data_card(stats, splits, rejects))
    log(
        f"prepare: {rows_read} rows read → {kept} kept, {len(rejects)} rejected, {duplicates} duplicates; "
        f"train/val/test = {stats['splits']['train']}/{stats['splits']['val']}/{stats['splits']['test']} → {data_dir}"
    )
    return stats


def _lengths(rows: list[dict]) -> str:
    chars = [sum(len(m["content"]) for m in r["messages"]) if "messages" in r else len(r["text"]) for r in rows]
    if not chars:
        return "–"
    return f"median {statistics.median(chars):.0f}, max {max(chars)}"


def data_card(stats: dict, splits: dict[str, list[dict]], rejects: list[dict]) -> str:
    lines = [
        "# Data card",
        "",
        f"Rows read: **{stats['rows_read']}** · kept **{stats['kept']}** · rejected **{stats['rejected']}** · "
        f"exact duplicates **{stats['duplicates']}**",
        "",
        "## Sources",
        "",
        "| file | read | kept | rejected | duplicates |",
        "|---|---:|---:|---:|---:|",
    ]
    for f, c in stats["files"].items():
        lines.append(f"| {f} | {c.get('read', 0)} | {c.get('kept', 0)} | {c.get('rejected', 0)} | {c.get('duplicates', 0)} |")
    lines += ["", "## Formats converted to chat messages", ""]
    lines += [f"- {fmt}: {n}" for fmt, n in stats["formats"].items()]
    lines += [
        "",
        "## Splits",
        "",
        f"Deterministic by prompt (or `group_field`) hash with seed {stats['seed']}; "
        "no val/test prompt appears in train (checked).",
        "",
        "| split | examples | length in characters |",
        "|---|---:|---|",
    ]
    lines += [f"| {name} | {len(rows)} | {_lengths(rows)} |" for name, rows in splits.items()]
    lines += ["", "## Rejected rows", ""]
    if rejects:
        lines += [f"- {reason}: {n}" for reason, n in stats["reject_reasons"].items()]
        lines += ["", "Every rejected row, with file, line and field, is in `rejects.jsonl`."]
    else:
        lines.append("None.")
    lines += ["", "Origin: all examples are human-provided (no synthetic data in this run).", ""]
    return "\n".join(lines)
