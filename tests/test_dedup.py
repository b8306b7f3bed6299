import random

import numpy as np
from datasketch import MinHash

from sftflow.data.dedup import (
    NearDupIndex,
    best_of_clusters,
    components,
    dedup_key,
    equal_key_pairs,
    loose,
    shingle_hash,
    shingles,
)

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
