"""Duplicate detection: exact (normalised text) and near duplicates (MinHash LSH).

Three keys per example:
- `content_hash`: its stable id (sha256 of whitespace/Unicode-normalised content, case kept).
- `dedup_key`: a 64-bit hash of aggressively normalised text (case, whitespace and
  punctuation ignored), so "Hello, world!" and "hello world" are one example.
- MinHash signatures (datasketch) over word 5-grams of the conversation without its system
  prompt — a system prompt shared by every row would make all rows look alike — and of the
  prompt alone.

Near duplicates are found the way large-corpus pipelines do it (datatrove, text-dedup):
LSH band hashes go into flat numpy arrays, equal bands are found by sorting, candidate
pairs of whole examples are verified against their estimated Jaccard similarity, and
clusters are connected components. With a spool folder, signatures and band keys live on
disk and one band's keys are sorted a key range at a time (`equal_key_pairs_in_blocks`); the
text itself is never held. Signatures equal datasketch's MinHash (its permutations, mixer and affine32
scheme) with a word-based shingle hash, computed a chunk at a time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from pathlib import Path

import numpy as np

from sftflow.data.columns import file_blocks
from sftflow.data.sizes import SIZES, Sizes
from sftflow.example import Example

_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()[:16]


def _turns(messages, norm) -> list:
    """Each turn as [role, text]; a turn's tool calls join its text (plain chats hash as they always did)."""
    out = []
    for m in messages:
        turn = [m.role, norm(m.content)]
        if m.tool_calls:
            turn.append([[c.name, norm(c.arguments)] for c in m.tool_calls])
        out.append(turn)
    return out


def _with_tools(example: Example, turns: list) -> list:
    return [*turns, ["tools", [t.to_dict() for t in example.tools]]] if example.tools else turns


def content_hash(record: Example | dict) -> str:
    """Stable id of a canonical record: first 16 hex of sha256 over its normalised content."""
    ex = Example.of(record)
    if ex.is_text:
        return _digest(["text", normalise(ex.text)])
    return _digest(_with_tools(ex, _turns(ex.messages, normalise)))


def prompt_hash(record: Example | dict) -> str:
    """Hash of everything the model is shown (all but the final answer): the default split group,
    so one prompt with two answers can never sit in both train and test."""
    ex = Example.of(record)
    if ex.is_text:
        return content_hash(ex)
    return _digest(_with_tools(ex, _turns(ex.prompt, normalise)))


def loose(text: str) -> str:
    """Case, punctuation and whitespace removed: the text as a duplicate detector sees it."""
    return _WS.sub(" ", _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower())).strip()


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _loose_key(messages) -> str:
    return "\x1e".join(f"{t[0]}\x1f{t[1]}" + (f"\x1f{json.dumps(t[2])}" if len(t) > 2 else "")
                       for t in _turns(messages, loose))


def dedup_key(record: Example | dict) -> int:
    ex = Example.of(record)
    if ex.is_text:
        return hash64(loose(ex.text))
    return hash64(_loose_key(ex.messages))


def prompt_key(record: Example | dict) -> int:
    """The prompt (all turns before the final answer), loosely normalised: equal prompts share a split."""
    ex = Example.of(record)
    if ex.is_text:
        return dedup_key(ex)
    return hash64(_loose_key(ex.prompt))


def dedup_texts(record: Example | dict) -> tuple[str, str]:
    """(whole example, prompt) as compared for near duplicates; system prompts left out."""
    ex = Example.of(record)
    if ex.is_text:
        return loose(ex.text), loose(ex.text)
    turns = [m for m in ex.messages if m.role != "system"]
    whole = loose(" ".join(t for m in turns for t in m.texts()))
    prompt = loose(" ".join(t for m in turns[:-1] for t in m.texts()))
    return whole, prompt


def shingles(text: str, n: int) -> list[bytes]:
    words = text.split()
    if len(words) <= n:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]


class NearDupIndex:
    """MinHash LSH over many examples, kept as numpy arrays.

    add() takes a chunk of signatures; pairs() returns the (verified) similar pairs.
    With `verify`, candidate pairs must also have an estimated Jaccard ≥ threshold
    (their signatures are kept, 4 bytes per permutation, in memory or a spool file);
    without it, any shared band joins two examples.
    """

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, ngram: int = 5, seed: int = 1,
                 verify: bool = True, spool: Path | None = None, sizes: Sizes = SIZES):
        from datasketch import MinHashLSH

        # datasketch's optimal (bands, rows), weighted towards recall: candidates are verified, so a
        # false candidate costs a comparison while a missed one is a duplicate left in the data.
        # At threshold 0.85 with 128 permutations: 12 bands of 10 rows, 99% recall at Jaccard 0.9.
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.05, 0.95))
        self.bands, self.rows = lsh.b, lsh.r
        self.threshold, self.num_perm, self.ngram, self.seed, self.verify = threshold, num_perm, ngram, seed, verify
        self.sizes = sizes  # the band files are read `block` keys, and sorted `partition_keys` keys, at a time
        rng = np.random.default_rng(seed)
        self._mix = rng.integers(1, 2**63, size=self.rows, dtype=np.uint64) | np.uint64(1)
        self._band_chunks: list[np.ndarray] = []
        self._sig_chunks: list[np.ndarray] = []
        # With a spool file, signatures (for verification) go there and each band's keys to a file of
        # their own, so memory holds one band of keys at a time, when pairs are looked for.
        self.spool = spool
        self._band_files = [] if spool is None else [spool.with_name(f"{spool.name}.band{b}") for b in range(self.bands)]
        for f in ([spool] if spool is not None else []) + self._band_files:
            f.write_bytes(b"")
        self.size = 0

    @staticmethod
    def signatures_of(texts: list[str], num_perm: int, ngram: int, seed: int = 1,
                      shingle_slice: int = SIZES.shingle_slice) -> np.ndarray:
        """(len(texts), num_perm) uint32 MinHash signatures over word n-grams.

        The same values as datasketch's `MinHash(num_perm, seed, hashfunc=shingle_hash)
        .update_batch(shingles(text, ngram))` per text (its affine32 scheme, permutations and
        pre-mix; a test checks equality), computed for a whole chunk in a few numpy passes:
        words are hashed once (cached), shingle hashes are sums over sliding windows.
        """
        if not texts:
            return np.zeros((0, num_perm), dtype=np.uint32)
        a, b = _permutations(num_perm, seed)
        from datasketch.minhash import _fmix

        coef = _shingle_coefficients(ngram)
        out = np.empty((len(texts), num_perm), dtype=np.uint32)
        for lo in range(0, len(texts), 512):  # blocks of (shingles x permutations) stay ~10 MiB
            block = texts[lo : lo + 512]
            words = [t.split() for t in block]
            # word hashes, each text followed by `ngram` zeros so no window reaches the next text
            flat = np.array([h for ws in words for h in [*map(_word_hash, ws), *([0] * ngram)]], dtype=np.uint32)
            sums = np.zeros(len(flat) - ngram + 1, dtype=np.uint32)
            for j in range(ngram):
                sums += flat[j : j + len(sums)] * coef[j]  # uint32 arithmetic wraps: mod 2^32
            counts = [max(1, len(ws) - ngram + 1) for ws in words]  # texts of <= ngram words: one shingle
            starts = np.cumsum([0] + [len(ws) + ngram for ws in words[:-1]])
            positions = np.concatenate([s + np.arange(c) for s, c in zip(starts, counts, strict=True)])
            owner = np.repeat(np.arange(len(block)), counts)  # the text of each shingle, ascending
            lows = None
            # (shingles x permutations) a slice at a time: one long text must not cost GBs
            for s in range(0, len(positions), shingle_slice):
                phv = _fmix(sums[positions[s : s + shingle_slice]], 32)[:, None] * a + b  # the affine32 permutation
                ids = owner[s : s + shingle_slice]
                firsts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
                mins = np.minimum.reduceat(phv, firsts, axis=0)
                if lows is None:
                    lows = np.full((len(block), num_perm), np.iinfo(phv.dtype).max, dtype=phv.dtype)
                lows[ids[firsts]] = np.minimum(lows[ids[firsts]], mins)
            out[lo : lo + len(block)] = lows
        return out

    def add(self, sig: np.ndarray) -> None:
        """Add a chunk of signatures (from signatures_of with this index's num_perm and ngram)."""
        n = len(sig)
        if not n:
            return
        bands = sig[:, : self.bands * self.rows].astype(np.uint64).reshape(n, self.bands, self.rows)
        with np.errstate(over="ignore"):
            keys = (bands * self._mix).sum(axis=2, dtype=np.uint64)  # one 64-bit hash per band
        if self.spool is None:
            self._band_chunks.append(keys)
        else:
            for b, path in enumerate(self._band_files):
                with open(path, "ab") as f:
                    f.write(np.ascontiguousarray(keys[:, b]).tobytes())
        if self.verify and self.spool is not None:
            with open(self.spool, "ab") as f:
                f.write(np.ascontiguousarray(sig, dtype=np.uint32).tobytes())
        elif self.verify:
            self._sig_chunks.append(sig)
        self.size += n

    def candidate_pairs(self) -> np.ndarray:
        """(i, j) index pairs that share at least one band, i < j, as an (m, 2) array."""
        if not self.size:
            return np.zeros((0, 2), dtype=np.int64)
        keys = np.concatenate(self._band_chunks) if self.spool is None else None
        out = np.zeros((0, 2), dtype=np.int64)
        for b in range(self.bands):
            if keys is not None:
                pairs = equal_key_pairs(keys[:, b])
            else:  # one band's keys, a key range at a time: memory bounded however many examples
                band = functools.partial(file_blocks, self._band_files[b], np.uint64, self.sizes.block)
                pairs = equal_key_pairs_in_blocks(band, self.size, self.sizes.partition_keys)
            pairs.sort(axis=1)
            # merged band by band: a pair found in every band (exact copies) is held once, not 12 times
            out = np.unique(np.concatenate([out, pairs]), axis=0)
        return out

    def jaccard(self, pairs: np.ndarray) -> np.ndarray:
        """Estimated Jaccard similarity of each pair, from the signatures' agreement."""
        sig = None if self.spool is not None else np.concatenate(self._sig_chunks)
        out = np.empty(len(pairs))
        block = 1024  # pairs per step: a bounded working set (up to 2 pages of the spool a pair)
        for lo in range(0, len(pairs), block):
            p = pairs[lo : lo + block]
            # A spooled index maps the file for one block at a time: pages a mapping has touched count as the
            # process's memory until it is unmapped, and random pairs would touch the whole file.
            s = sig if sig is not None else np.memmap(self.spool, dtype=np.uint32, mode="r",
                                                        shape=(self.size, self.num_perm))
            out[lo : lo + len(p)] = (s[p[:, 0]] == s[p[:, 1]]).mean(axis=1)
            del s
        return out

    def pairs(self) -> np.ndarray:
        pairs = self.candidate_pairs()
        if self.verify and len(pairs):
            pairs = pairs[self.jaccard(pairs) >= self.threshold]
        return pairs


_WORD_HASHES: dict[str, int] = {}


def _word_hash(word: str) -> int:
    h = _WORD_HASHES.get(word)
    if h is None:
        if len(_WORD_HASHES) > 500_000:  # bound the cache (~80 MiB) on huge vocabularies
            _WORD_HASHES.clear()
        h = _WORD_HASHES[word] = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
    return h


# odd 32-bit weights of the words at positions 0, 1, 2, ... of a shingle (a prefix serves any n-gram size)
_SHINGLE_WEIGHTS = np.random.default_rng(12345).integers(0, 2**31, size=64, dtype=np.uint64).astype(np.uint32) * 2 + 1


def _shingle_coefficients(n: int) -> np.ndarray:
    if n > len(_SHINGLE_WEIGHTS):
        raise ValueError(f"n-grams of at most {len(_SHINGLE_WEIGHTS)} words")
    return _SHINGLE_WEIGHTS[:n]


def shingle_hash(shingle: bytes) -> int:
    """The 32-bit hash MinHash sees for one shingle: a weighted sum of its words' hashes (mod 2^32),
    so a chunk's shingles can be hashed with sliding-window sums instead of one call each."""
    words = shingle.decode().split()
    return sum(_word_hash(w) * int(_SHINGLE_WEIGHTS[j]) for j, w in enumerate(words)) % 2**32


@functools.lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return a, b


def components(n: int, *edge_lists: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes, given (m, 2) edge arrays."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = [e for e in edge_lists if len(e)]
    if not edges:
        return np.arange(n)
    e = np.concatenate(edges)
    graph = coo_matrix((np.ones(len(e), dtype=np.int8), (e[:, 0], e[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def equal_key_pairs(keys: np.ndarray) -> np.ndarray:
    """Edges chaining together all positions that hold the same key: (first, second), (second,
    third), ... in position order — connected, and linear in size."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    same = ranked[1:] == ranked[:-1]
    return np.stack([order[:-1][same], order[1:][same]], axis=1)


def key_ranges(n: int, max_keys: int) -> list[tuple[np.uint64, np.uint64]]:
    """Inclusive ranges [lo, hi] cutting the 64-bit key space into parts of about `max_keys`
    of n keys (the keys are hashes, so evenly spread)."""
    parts = max(1, -(-n // max_keys))
    edges = [2**64 * p // parts for p in range(parts + 1)]
    return [(np.uint64(edges[p]), np.uint64(edges[p + 1] - 1)) for p in range(parts)]


def keys_in_range(blocks, lo: np.uint64, hi: np.uint64, field: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values, positions) of the values whose key is in [lo, hi], from `blocks` of (first
    position, values): uint64 keys, or records whose `field` is the uint64 key."""
    values, positions = [], [np.zeros(0, dtype=np.int64)]
    for start, block in blocks:
        key = block if field is None else block[field]
        idx = np.flatnonzero((key >= lo) & (key <= hi))
        values.append(block[idx])
        positions.append(idx + start)
    return (np.concatenate(values) if values else np.zeros(0, dtype=np.uint64)), np.concatenate(positions)


def equal_key_pairs_in_blocks(blocks, n: int, max_keys: int) -> np.ndarray:
    """`equal_key_pairs` over a uint64 column of n keys too large to sort at once.

    `blocks()` yields (first position, keys) in order and is called once per key range: each
    range of about `max_keys` keys is sorted on its own. The edges are those one big sort gives.
    """
    out = [np.zeros((0, 2), dtype=np.int64)]
    for lo, hi in key_ranges(n, max_keys):
        keys, positions = keys_in_range(blocks(), lo, hi)
        out.append(positions[equal_key_pairs(keys)])
    return np.concatenate(out)


def best_of_clusters(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """For each node, the index of its cluster's keeper: highest score, then first seen."""
    n = len(labels)
    idx = np.arange(n)
    order = np.lexsort((idx, -scores, labels))  # by label, then best score, then position
    first = np.ones(n, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    keeper_of_label = np.empty(labels.max() + 1 if n else 0, dtype=np.int64)
    keeper_of_label[labels[order][first]] = order[first]
    return keeper_of_label[labels]
