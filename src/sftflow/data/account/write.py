"""Pass 2: the spool streamed into train/val/test.jsonl, with every record's decision in the ledger.

A block of records at a time: each record's fate from `Fates` (decide/), its ledger lines, its
file's counts and, when kept, its line in its split's file. The prompt keys of train and of
val/test are written for the leakage check (leakage.py), and `Tally` counts what stats.json
reports as the records go by (no per-record array is kept).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sftflow.data.account.census import Lowest
from sftflow.data.account.collect import SPOOL, Collector
from sftflow.data.account.decisions import Decisions
from sftflow.data.decide.conflicts import SHOWN_GROUPS
from sftflow.data.decide.fate import (
    DUPLICATE,
    FILTERED,
    KEPT,
    RECORD_FATES,
    SOURCE_WEIGHT,
    UNUSED,
    Fate,
    Fates,
)
from sftflow.data.decide.split import SPLITS
from sftflow.data.sizes import SIZES
from sftflow.data.step import Step
from sftflow.example import Example
from sftflow.progress import phase


@dataclass
class Tally:
    """What pass 2 counts as it streams by, for stats.json."""

    filter_codes: np.ndarray  # records per filter reason code
    states: np.ndarray = field(default_factory=lambda: np.zeros(len(RECORD_FATES), dtype=np.int64))  # by Fate
    splits: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))  # kept, by split
    synthetic: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))  # kept synthetic, by split
    score_histogram: np.ndarray = field(default_factory=lambda: np.zeros(10, dtype=np.int64))  # task records
    origins: Counter = field(default_factory=Counter)  # (split, origin code) → kept
    near_duplicates: int = 0
    lowest: Lowest = field(default_factory=Lowest)  # the lowest-scored kept task examples
    conflicts: dict = field(default_factory=dict)  # shown conflict group → its members
    conflict_rows: int = 0
    conflict_groups: set = field(default_factory=set)
    mix_in_train: int = 0
    pii_kept: int = 0
    truncated_kept: int = 0

    def conflict(self, group: int, shown: set, rid: str, where: str, state: int, score: float, line: str) -> None:
        """A member of a conflict group: counted, and kept for the card if its group is shown."""
        self.conflict_rows += 1
        self.conflict_groups.add(group)
        if group in shown:
            rec = json.loads(line)
            member = {"id": rid, "where": where, "origin": rec["source"]["origin"], "score": round(score, 3),
                      "fate": Fate(state).word, "answer": Example.of(rec).answer_text[:300]}
            asked = Example.of(rec).prompt  # the turn before the answer: the question, or a tool's result
            prompt = "\n".join(asked[-1].texts()) if asked else ""
            self.conflicts.setdefault(group, {"prompt": prompt[:300], "members": []})["members"].append(member)

    def add(self, state: np.ndarray, split: np.ndarray, near: np.ndarray, b: dict[str, np.ndarray]) -> None:
        kept = state == KEPT
        self.states += np.bincount(state, minlength=len(RECORD_FATES))
        self.splits += np.bincount(split[kept], minlength=3)
        self.synthetic += np.bincount(split[kept & b["synthetic"]], minlength=3)
        self.score_histogram += np.histogram(b["score"][~b["mix"]], bins=10, range=(0, 1))[0]
        self.filter_codes += np.bincount(b["filter"], minlength=len(self.filter_codes))
        keys, counts = np.unique(split[kept].astype(np.int64) * 256 + b["origin"][kept], return_counts=True)
        self.origins.update({(int(k) // 256, int(k) % 256): int(v) for k, v in zip(keys, counts, strict=True)})
        self.near_duplicates += int((near & (state == DUPLICATE)).sum())
        self.mix_in_train += int((kept & b["mix"]).sum())
        self.pii_kept += int((kept & b["pii"]).sum())
        self.truncated_kept += int((kept & b["truncated"]).sum())


class WriteSplits(Step):
    """Pass 2 in the work folder; `run` returns the Tally."""

    name = "write"

    def __init__(self, work: Path, block: int = SIZES.write_block):
        super().__init__()
        self.work, self.block = work, block  # block: records written out at a time

    def run(self, col: Collector, fate: Fates) -> Tally:
        with phase("prepare: writing train/val/test and the ledger", total=col.files.rows_read) as update:
            tally = self._write(col, fate, update)
        self.counts.update({Fate(k).counted_as: int(v) for k, v in enumerate(tally.states)})
        return tally

    def _write(self, col: Collector, fate: Fates, progress) -> Tally:
        work, keys = self.work, col.keys
        tally = Tally(filter_codes=np.zeros(len(keys.drops), dtype=np.int64))
        outs = {name: open(work / f"{name}.jsonl", "w", encoding="utf-8") for name in SPLITS}  # noqa: SIM115
        prompts = {k: open(work / f"prompts.{k}.u64", "wb") for k in ("train", "eval")}  # noqa: SIM115
        names = ("id", "file", "line", "filter", "score", "truncated", "tokens", "mix", "synthetic", "pii", "origin",
                 "prompt", "split", "reasons")
        shown = set(np.unique(fate.conflict[fate.conflict >= 0])[:SHOWN_GROUPS].tolist())
        with open(work / SPOOL, encoding="utf-8") as spool:
            for start, b in keys.store.blocks(*names, size=self.block):
                state, split, near = self._block(start, b, spool, col, fate, tally, outs, shown)
                tally.add(state, split, near, b)
                progress(start + len(state))
                kept = state == KEPT
                prompts["train"].write(b["prompt"][kept & (split == 0)].tobytes())
                prompts["eval"].write(b["prompt"][kept & (split > 0) & ~b["mix"]].tobytes())
            if spool.readline():
                raise RuntimeError(f"the spool holds more records than the key columns ({len(keys.store)})")
        for f in (*outs.values(), *prompts.values()):
            f.close()
        (work / SPOOL).unlink()
        return tally

    def _block(self, start: int, b: dict[str, np.ndarray], spool, col: Collector, fate: Fates, tally: Tally,
               outs: dict, shown: set) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One block of records: each record's decision in the ledger and its file's counts, kept records
        into their split's file. Returns the block's (state, split, near) for the tally."""
        decisions: Decisions = col.decisions
        files, drops, reasons = col.keys.files, col.keys.drops, col.keys.quality_reasons
        state, split, keeper, near = fate.block(start, b["filter"], b["split"])
        by_embedding = fate.semantic_in(start, len(state))
        conflict = fate.conflicts_in(start, len(state))
        # the spool last: zip stops at the end of the block before it reads a line of the next one
        rows = zip(b["id"].tolist(), b["file"].tolist(), b["line"].tolist(), state.tolist(), split.tolist(), spool,
                   strict=False)
        j = -1
        for j, (rid, file_code, lineno, s, k, line) in enumerate(rows):
            rid, file = f"{rid:016x}", files[file_code]
            counts = col.files.counts[file]
            score = f"score {b['score'][j]:.3f}" + (f": {q}" if (q := reasons[b["reasons"][j]]) else "")
            counts[Fate(s).counted_as] += 1
            if conflict[j] >= 0:
                decisions.conflict(rid, file, lineno, int(conflict[j]))
                tally.conflict(int(conflict[j]), shown, rid, f"{file}:{lineno}", s, float(b["score"][j]), line)
            if s == FILTERED:
                decisions.filtered(rid, file, lineno, drops[b["filter"][j]], b["score"][j])
            elif s == DUPLICATE:
                kid, kfile, kline = fate.keeper_where(keeper[j])
                how = "semantic" if by_embedding[j] else "near" if near[j] else "exact"
                decisions.duplicate(rid, file, lineno, how, f"{kid} ({files[kfile]}:{kline})", score)
            elif s == UNUSED:
                why = fate.why(start + j)
                decisions.unused(rid, file, lineno, why, score)
                counts[SOURCE_WEIGHT] += why == SOURCE_WEIGHT
            else:
                truncated = bool(b["truncated"][j])
                decisions.kept(rid, file, lineno, SPLITS[k], truncated,
                               (f"{score}; {b['tokens'][j]} tokens" if truncated else score) + _tools_note(line))
                if not b["mix"][j] and tally.lowest.wants(float(b["score"][j])):  # parsed only when listed
                    tally.lowest.offer(float(b["score"][j]), rid, f"{file}:{lineno}", json.loads(line))
                outs[SPLITS[k]].write(line)
                counts["train"] += k == 0
        if j != len(state) - 1:
            raise RuntimeError(f"spool and key columns disagree at record {start + j}")
        return state, split, near


def _tools_note(line: str) -> str:
    """For the ledger's `kept` line of an example with tools: the tools it declares and the calls it trains."""
    if '"tools"' not in line:  # the record's JSON text: most examples have no tools, and are not parsed again
        return ""
    ex = Example.of(json.loads(line))
    if not ex.tools:
        return ""
    calls = Counter(c.name for m in ex.messages for c in m.tool_calls)
    return (f"; tools: {', '.join(t.name for t in ex.tools)}; calls: "
            + (", ".join(f"{n} ×{k}" for n, k in sorted(calls.items())) or "none"))
