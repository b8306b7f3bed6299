import random

import numpy as np
from datasketch import MinHash

from sftflow.data.decide.dedup import (
    NearDupIndex,
    best_of_clusters,
    components,
    dedup_key,
    equal_key_pairs,
    equal_key_pairs_in_blocks,
    key_ranges,
    loose,
    shingle_hash,
    shingles,
)
from sftflow.data.sizes import Sizes

WORDS = [f"w{i}" for i in range(2000)]


def sentence(rng, n=60):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def edit(rng, text, k):
    words = text.split()
    for _ in range(k):
        words[rng.randrange(len(words))] = rng.choice(WORDS)
    return " ".join(words)


def test_loose_key_ignores_case_space_punctuation_but_not_words():
    a = {"messages": [{"role": "user", "content": "Hello,   World!"}, {"role": "assistant", "content": "Hi."}]}
    b = {"messages": [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hi"}]}
    c = {"messages": [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hey"}]}
    assert loose("Hello,   World!") == "hello world"
    assert dedup_key(a) == dedup_key(b) != dedup_key(c)


def test_batched_signatures_equal_datasketch_minhashes():
    rng = random.Random(2)
    texts = ["a b c d e f g h", "x y", ""] + [sentence(rng, rng.randint(1, 80)) for _ in range(1200)]
    sig = NearDupIndex.signatures_of(texts, num_perm=64, ngram=5)  # crosses the 512-text block border
    for i, text in enumerate(texts):
        m = MinHash(num_perm=64, seed=1, hashfunc=shingle_hash)
        m.update_batch(shingles(text, 5))
        assert (sig[i] == m.hashvalues).all(), i


def test_near_duplicates_found_unrelated_texts_not():
    rng = random.Random(0)
    base = [sentence(rng) for _ in range(300)]
    near = [edit(rng, base[i], 1) for i in range(0, 300, 10)]  # 1 word of 60 changed: Jaccard ~0.84
    far = [edit(rng, base[i], 12) for i in range(5, 300, 10)]  # 12 of 60 changed: Jaccard well below 0.5
    texts = base + near + far
    index = NearDupIndex(threshold=0.7, num_perm=128, ngram=5)
    index.add(NearDupIndex.signatures_of(texts, 128, 5))
    pairs = {tuple(p) for p in index.pairs().tolist()}
    found = sum((i * 10, 300 + k) in pairs for k, i in enumerate(range(30)))
    assert found >= 27  # LSH is probabilistic; a 1-word edit is found almost always
    assert not any(j >= 330 or i >= 330 for i, j in pairs)  # the heavily edited ones are not duplicates
    assert not any(i < 300 and j < 300 for i, j in pairs)  # unrelated random texts never pair


def test_components_and_best_member():
    labels = components(6, np.array([[0, 1], [1, 2]]), np.array([[4, 5]]))
    assert labels[0] == labels[1] == labels[2] != labels[3] and labels[4] == labels[5]
    scores = np.array([0.5, 0.9, 0.9, 1.0, 0.2, 0.2])
    assert best_of_clusters(labels, scores).tolist() == [1, 1, 1, 3, 4, 4]  # best score, then first seen
    keys = np.array([7, 3, 7, 3, 9], dtype=np.uint64)
    assert sorted(map(tuple, equal_key_pairs(keys).tolist())) == [(0, 2), (1, 3)]


def test_equal_keys_found_a_key_range_at_a_time_match_one_big_sort():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**64 - 1, size=5000, dtype=np.uint64, endpoint=True)
    keys[rng.integers(0, 5000, 1500)] = keys[rng.integers(0, 5000, 1500)]
    keys[:3], keys[3:5] = np.uint64(2**64 - 1), 0  # both ends of the key space

    def blocks():
        return ((s, keys[s : s + 333]) for s in range(0, len(keys), 333))

    whole = sorted(map(tuple, equal_key_pairs(keys).tolist()))
    assert len(whole) > 800
    for max_keys in (Sizes().partition_keys, 700, 40):
        assert sorted(map(tuple, equal_key_pairs_in_blocks(blocks, len(keys), max_keys).tolist())) == whole
    ranges = key_ranges(5000, 40)
    assert len(ranges) == 125 and ranges[0][0] == 0 and ranges[-1][1] == np.uint64(2**64 - 1)
    assert all(int(a[1]) + 1 == int(b[0]) for a, b in zip(ranges, ranges[1:], strict=False))  # no gap, no overlap


def test_spooled_index_finds_the_pairs_of_the_in_memory_one_with_small_key_ranges(tmp_path):
    rng = random.Random(4)
    texts = [sentence(rng, 150) for _ in range(300)]
    texts += [edit(rng, t, 1) for t in texts[:60]]
    sig = NearDupIndex.signatures_of(texts, 128, 5)
    # 8 key ranges per band, band files read 100 keys at a time
    memory, spooled = NearDupIndex(), NearDupIndex(spool=tmp_path / "sig.u32", sizes=Sizes(block=100, partition_keys=50))
    for lo in range(0, len(texts), 64):
        memory.add(sig[lo : lo + 64])
        spooled.add(sig[lo : lo + 64])
    assert len(memory.pairs()) >= 55 and np.array_equal(memory.pairs(), spooled.pairs())


def test_signatures_are_the_same_whatever_the_shingle_slice():
    """Long texts are hashed a slice of shingles at a time (bounded memory); slices that cut through
    texts, and texts shorter than a shingle, give the signatures of one pass."""
    import random

    from sftflow.data.decide import dedup

    rng = random.Random(3)
    texts = [" ".join(f"w{rng.randrange(50)}" for _ in range(n)) for n in (1, 3, 5, 6, 40, 200, 7, 0, 1000)]
    whole = dedup.NearDupIndex.signatures_of(texts, 64, 5)
    for size in (1, 7, 64):
        assert (dedup.NearDupIndex.signatures_of(texts, 64, 5, shingle_slice=size) == whole).all()
