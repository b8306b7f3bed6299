"""The prepare log's closing lines: fates, conflicts, semantic signals, speed, the per-file table,
personal data and the judge."""

from __future__ import annotations

from pathlib import Path

from sftflow.data.account.collect import Collector
from sftflow.data.account.write import Tally
from sftflow.data.decide.fate import Fate


def log_summary(data_dir: Path, conflicts: str, col: Collector, tally: Tally, stats: dict, sem_stats: dict | None,
                seconds: float, log) -> None:
    """The prepare log's closing lines: fates, conflicts, semantic signals, speed, per-file table, PII, judge."""
    counts = stats["splits"]
    log(f"prepare: {col.files.rows_read} rows read → {stats['kept']} kept, {stats['rejected']} rejected, "
        f"{stats['duplicates']} duplicates ({tally.near_duplicates} near), {stats['filtered']} filtered"
        + (f", {stats['unused']} unused (general mix / synthetic rules / conflicting labels / source weights and "
           "max_rows)" if stats["unused"] else "")
        + f"; train/val/test = {counts['train']}/{counts['val']}/{counts['test']} → {data_dir}")
    if tally.conflict_groups:  # reported, not warned: a few in thousands of rows is ordinary in real data
        log(f"  conflicting labels: {len(tally.conflict_groups)} prompts with different answers "
            f"({tally.conflict_rows} examples, data.conflicts: {conflicts}; see data_card.md)")
    if sem_stats is not None:
        log(f"  semantic signals: {sem_stats['embedded']} examples embedded in {sem_stats['seconds']:.0f} s; "
            f"filtered {sem_stats['unrelated_answer']} unrelated answers and {sem_stats['semantic_outlier']} outliers, "
            f"{sem_stats['duplicates']} semantic duplicates (see data_card.md)")
    log(f"  {seconds:.1f} s, {col.files.rows_read / max(seconds, 1e-9):,.0f} rows/s")
    _log_table(stats, log)
    if stats["pii"]["rows"]:
        pii = stats["pii"]
        done = {"redact": "redacted", "drop": "filtered"}.get(pii["mode"], "flagged, kept as written")
        log(f"  personal data in {pii['rows']} rows ({', '.join(f'{k} {v}' for k, v in pii['kinds'].items())}): {done}")
    if stats["judge"]:
        log("  " + judge_line(stats["judge"]))


def _log_table(stats: dict, log) -> None:
    columns = ("read", *(f.counted_as for f in (Fate.KEPT, Fate.REJECTED, Fate.DUPLICATE, Fate.FILTERED)))
    rows = [("file", *columns)]
    for f, v in stats["files"].items():
        rows.append((f, *(str(v.get(k, 0)) for k in columns)))
    width = max(len(r[0]) for r in rows)
    for r in rows:
        log("  " + r[0].ljust(width) + "".join(x.rjust(11) for x in r[1:]))
    for reason, k in list(stats["reject_reasons"].items())[:8]:
        log(f"  rejected {k:>6}: {reason}")
    for reason, k in list(stats["filter_reasons"].items())[:8]:
        log(f"  filtered {k:>6}: {reason}")


def judge_line(j: dict) -> str:
    """One line on what the LLM judge did, for the prepare log."""
    means = ", ".join(f"{k} {v:.2f}" for k, v in j["means"].items())
    line = (f"judge {j['model']}: {j['scored']} scored ({j['cached']} cache hits), {j['filtered']} filtered, "
            f"{j['malformed']} malformed replies" + (f"; means {means}" if means else ""))
    a = j.get("agreement")
    if a and a["pairs"]:
        kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.2f}"
        line += (f"; vs human correctness on {a['pairs']} rated outputs: exact {a['exact']:.0%}, "
                 f"within one {a['within_one']:.0%}, kappa {kappa}")
    return line
