"""Deterministic, group-aware train/val/test split and the leakage report.

An example's split is a pure function of its group's key and the seed (a hash mapped to
[0, 1) and cut at the configured fractions), so re-running gives the same split and
adding data never moves an existing example. A group is a connected component of
examples that must stay together: the same (loosely normalised) prompt, near-duplicate
prompts (MinHash LSH), and equal values of `data.group_field`. Its key is the smallest
member key, which new, unrelated rows cannot change.

With `data.stratify_field`, groups are instead ranked by their hash within each label and
cut at exact fractions: every label gets its share in every split, at the cost that adding
data can shift a few groups near the cut points.

After splitting, `leakage_report` checks val/test against train: shared prompts (must be
zero, or prepare fails) and shared word 13-grams (reported, as in GPT-3's decontamination).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

SPLITS = ("train", "val", "test")
NGRAM = 13


def split_u(group_key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{group_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(group_key: str, seed: int, fractions: dict[str, float]) -> str:
    return SPLITS[_cut(split_u(group_key, seed), fractions)]


def _cut(u: float, fractions: dict[str, float]) -> int:
    edge = 0.0
    for i, name in enumerate(SPLITS):
        edge += fractions[name]
        if u < edge:
            return i
    return max(i for i, name in enumerate(SPLITS) if fractions[name] > 0)


def _cuts(u: np.ndarray, fractions: dict[str, float]) -> np.ndarray:
    """`_cut` for a whole array at once (the same answers)."""
    edges = np.cumsum([fractions[name] for name in SPLITS])
    out = np.searchsorted(edges, u, side="right")  # the first split whose upper edge is above u
    last = max(i for i, name in enumerate(SPLITS) if fractions[name] > 0)
    out[out >= len(SPLITS)] = last
    return out.astype(np.int8)


def _key_u(keys: np.ndarray, seed: int) -> np.ndarray:
    return np.fromiter((split_u(f"{int(k):016x}", seed) for k in keys), dtype=np.float64, count=len(keys))


def split_keys(keys: np.ndarray, seed: int, fractions: dict[str, float]) -> np.ndarray:
    """Split index of each example that is a group of its own, from its own key."""
    return _cuts(_key_u(keys, seed), fractions)


def assign_splits(own_keys: np.ndarray, labels: np.ndarray, seed: int, fractions: dict[str, float],
                  strata: list | None = None) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of every example.

    own_keys: uint64 key of each example (its group field or prompt); labels: component of each
    example; strata: optional label value per example for stratified splits.
    """
    n = len(own_keys)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    order = np.lexsort((own_keys, labels))
    first = np.ones(n, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    comp_ids = labels[order][first]
    comp_keys = own_keys[order][first]  # smallest key of each component
    u = _key_u(comp_keys, seed)
    if strata is None:
        comp_split = _cuts(u, fractions)
    else:
        strata_arr = np.asarray(strata, dtype=object)
        comp_stratum = strata_arr[order][first]
        comp_split = np.zeros(len(comp_ids), dtype=np.int8)
        for value in dict.fromkeys(comp_stratum.tolist()):
            members = np.flatnonzero(comp_stratum == value)
            ranked = members[np.argsort(u[members], kind="stable")]
            # rank-based cut: position (k + 0.5) / m inside the stratum decides the split
            positions = (np.arange(len(ranked)) + 0.5) / len(ranked)
            comp_split[ranked] = _cuts(positions, fractions)
    split_of_comp = np.zeros(labels.max() + 1, dtype=np.int8)
    split_of_comp[comp_ids] = comp_split
    return split_of_comp[labels]


def ngram_hashes(text: str, n: int = NGRAM) -> list[int]:
    """Hashes of the word n-grams of an already normalised text (empty if shorter than n words)."""
    words = text.split()
    return [hash(" ".join(words[i : i + n])) for i in range(len(words) - n + 1)]


class NgramIndex:
    """Sorted n-gram hashes of many texts, to test other texts against (12 bytes per n-gram)."""

    def __init__(self, texts: Iterable[str], n: int = NGRAM):
        self.n = n
        grams, owners, gram_parts, owner_parts = [], [], [], []
        for i, t in enumerate(texts):
            h = ngram_hashes(t, n)
            grams += h
            owners += [i] * len(h)
            if len(grams) > 100_000:  # into numpy as we go: Python ints cost 4x the memory
                gram_parts.append(np.array(grams, dtype=np.int64))
                owner_parts.append(np.array(owners, dtype=np.int32))
                grams, owners = [], []
        gram_parts.append(np.array(grams, dtype=np.int64))
        owner_parts.append(np.array(owners, dtype=np.int32))
        # one step at a time, each part freed once copied: about 28 bytes per n-gram at the peak
        all_grams = np.concatenate(gram_parts)
        del gram_parts
        order = np.argsort(all_grams, kind="stable")
        self.grams = all_grams[order]
        del all_grams
        self.owners_sorted = np.concatenate(owner_parts)[order]

    @classmethod
    def of_hashes(cls, grams: np.ndarray, owners: np.ndarray, n: int = NGRAM) -> NgramIndex:
        """An index of n-gram hashes already computed (`owners`: which text each came from)."""
        index = cls([], n)
        order = np.argsort(grams, kind="stable")
        index.grams, index.owners_sorted = grams[order], owners[order]
        return index

    def matches(self, grams: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For n-gram hashes `grams` of other texts (`rows`: which text each came from), every
        (row, owner) pair where a gram is also one of the owner's: two aligned arrays."""
        if not len(self.grams) or not len(grams):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        lo, hi = np.searchsorted(self.grams, grams, "left"), np.searchsorted(self.grams, grams, "right")
        hit = np.flatnonzero(hi > lo)
        counts = hi[hit] - lo[hit]
        # the positions lo..hi-1 of every hit, flattened: each gram's owners
        starts = np.repeat(lo[hit] - np.cumsum(counts) + counts, counts)
        positions = starts + np.arange(int(counts.sum()))
        return np.repeat(np.asarray(rows)[hit], counts).astype(np.int64), self.owners_sorted[positions].astype(np.int64)

    def overlaps(self, text: str) -> int | None:
        """Index (in the texts given at construction) of a text sharing an n-gram with this one, or None."""
        grams = ngram_hashes(text, self.n)
        if not grams or not len(self.grams):
            return None
        q = np.array(grams, dtype=np.int64)
        pos = np.searchsorted(self.grams, q).clip(max=len(self.grams) - 1)
        hit = np.flatnonzero(self.grams[pos] == q)
        return int(self.owners_sorted[pos[hit[0]]]) if len(hit) else None
