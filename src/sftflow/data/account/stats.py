"""stats.json, the warnings and the prepare log's closing lines, from what the steps counted.

The promise of the stage is checked here first: every row read has exactly one fate, or
prepare stops before anything is published.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from sftflow.config.data import DataConfig
from sftflow.data.account.collect import Collector
from sftflow.data.account.write import Tally
from sftflow.data.decide.fate import SOURCE_MAX_ROWS, SOURCE_WEIGHT, Fate, Fates
from sftflow.data.decide.split import SPLITS
from sftflow.data.step import Drop, Step
from sftflow.errors import SftflowWarning

MIN_TEST_EXAMPLES = 50  # below this a test metric is mostly noise
PLAYBOOK_MIN_EXAMPLES = 500  # practice's starting point for a task


def fate_totals(col: Collector, tally: Tally) -> tuple[dict, dict]:
    """(kept per split, rows per fate); the fates must sum to the rows read, the promise of this stage."""
    counts = {name: int(tally.splits[k]) for k, name in enumerate(SPLITS)}
    totals = {
        Fate.KEPT.counted_as: int(tally.states[Fate.KEPT]),
        Fate.REJECTED.counted_as: sum(v[Fate.REJECTED.counted_as] for v in col.files.counts.values()),
        Fate.DUPLICATE.counted_as: int(tally.states[Fate.DUPLICATE]),
        Fate.FILTERED.counted_as: int(tally.states[Fate.FILTERED]),
        Fate.UNUSED.counted_as: int(tally.states[Fate.UNUSED]) + col.files.capped,
    }
    if sum(totals.values()) != col.files.rows_read:  # never silently lose a row
        raise RuntimeError(f"row accounting broken: {totals} does not sum to {col.files.rows_read} rows read")
    return counts, totals


def filter_kinds(drops: list[Drop | None], counts: np.ndarray) -> Counter:
    """Filtered records by the kind each drop is counted as (a low_quality drop by the quality rules
    it tripped, others by their code), from the count of records per "filter" column code."""
    kinds: Counter = Counter()
    for code in np.flatnonzero(counts[1:]) + 1:
        kinds[drops[code].kind] += int(counts[code])
    return kinds


def step_counts(read: Step, rule_filters: dict[str, Counter], *later: Step | None) -> dict[str, dict[str, int]]:
    """stats.json's "steps": each step's own counters, in pipeline order: pass 1, the rule filters it ran
    on every record (`rule_filters`: their counts summed over the chunks of every worker), then the steps
    after it (None: a step these settings switch off)."""
    steps = [(read.name, read.counts), *rule_filters.items(), *((s.name, s.counts) for s in later if s is not None)]
    return {name: {k: int(v) for k, v in counts.items()} for name, counts in steps}


def source_counts(d: DataConfig, col: Collector) -> list[dict]:
    """Per data.sources entry, for the data card: rows read, kept (any split), used in train, left
    unused by max_rows and by weight, and its share of the training rows from data.sources."""
    out = [{"path": s.path, "weight": s.weight, "max_rows": s.max_rows, "read": 0, "kept": 0, "train": 0,
            SOURCE_MAX_ROWS: 0, SOURCE_WEIGHT: 0} for s in d.sources]
    for file, counts in col.files.counts.items():
        k = col.files.source_of.get(file, -1)
        if k >= 0:
            for name in ("read", "kept", "train", SOURCE_MAX_ROWS, SOURCE_WEIGHT):
                out[k][name] += counts.get(name, 0)
    train = sum(o["train"] for o in out)
    total = sum(s.weight or 0 for s in d.sources)
    for o in out:
        o["share"] = o["train"] / train if train else 0.0
        o["target_share"] = o["weight"] / total if o["weight"] else None
    return out


def warn(fate: Fates, col: Collector, counts: dict, task_kept: int, judge) -> list[str]:
    """What the decisions, the censuses and the judge warn about; each one is also raised as a SftflowWarning."""
    warns = fate.warnings + col.formats.warnings() + col.systems.warnings()
    if counts["test"] < MIN_TEST_EXAMPLES:
        warns.append(f"the test split has only {counts['test']} examples (< {MIN_TEST_EXAMPLES}): "
                     "test metrics will be noise; add data or raise data.split.test")
    if task_kept < PLAYBOOK_MIN_EXAMPLES:
        warns.append(f"only {task_kept} usable examples; practice suggests starting from ~{PLAYBOOK_MIN_EXAMPLES} "
                     "quality pairs")
    if judge is not None and (judge.counts["failed"] or judge.counts["budget"]):
        warns.append(f"data.quality.judge: {judge.counts['failed'] + judge.counts['budget']} examples not judged "
                     f"({judge.last_error}); they keep their rule score; re-run prepare to judge them")
    for w in warns:
        warnings.warn(w, SftflowWarning, stacklevel=3)  # at prepare()
    return warns


def decision_stats(d: DataConfig, col: Collector, tally: Tally, fate: Fates, judge, agreement: dict | None,
                   sem_stats: dict | None) -> dict:
    """stats.json's account of duplicates, splits, mix, origins, sources, rejects, filters and conflicts."""
    p = col.provenance
    return {
        "near_duplicates": tally.near_duplicates,
        "exact_duplicates": int(tally.states[Fate.DUPLICATE]) - tally.near_duplicates,
        "splits": {name: int(tally.splits[k]) for k, name in enumerate(SPLITS)},
        "general_mix_in_train": tally.mix_in_train,
        "synthetic": {**fate.synthetic, "by_split": {name: int(tally.synthetic[k]) for k, name in enumerate(SPLITS)},
                      "max_train_share": d.synth.max_train_share, "in_test": d.synth.in_test,
                      "teachers": dict(p.teachers.most_common()), "templates": dict(p.templates.most_common())},
        "judge": None if judge is None else {**judge.stats(), "agreement": agreement},
        "origins": {f"{SPLITS[k]}:{col.keys.origins[o]}": v for (k, o), v in tally.origins.items()},
        "formats": col.formats.stats(),
        "files": {f: dict(v) for f, v in col.files.counts.items()},
        "licenses": {s.path: s.license for s in d.sources if s.license},
        "sources": source_counts(d, col),
        "reject_reasons": dict(col.rejects.reasons.most_common()),
        "pii": {"mode": d.quality.pii, "rows": col.pii.rows, "kinds": dict(col.pii.kinds.most_common()),
                "kept": tally.pii_kept},
        "filter_reasons": dict(filter_kinds(col.keys.drops.values, tally.filter_codes).most_common()),
        "quality": {"threshold": d.quality.threshold if d.quality.enabled else None,
                    "histogram": tally.score_histogram.tolist(),
                    "lowest": col.lowest.stats(), "lowest_kept": tally.lowest.stats()},
        **({} if sem_stats is None else {"semantic": sem_stats}),
        "conflicts": {"policy": d.conflicts, "groups": len(tally.conflict_groups), "rows": tally.conflict_rows,
                      "unused": sum(1 for why in fate.why_unused.values() if why.startswith("conflicting labels")),
                      "shown": list(tally.conflicts.values())},
        "system_prompts": col.systems.stats(),
    }
