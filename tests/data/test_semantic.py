"""sftflow.data.signals.embeddings with the real all-MiniLM-L6-v2 (the semantic extra, installed with dev):
embeddings, unrelated answers, outliers and near-duplicate clusters, each on rows whose label is
known by construction; the clustering also on hand-made vectors with an exact oracle."""

import random
import sys
from pathlib import Path

import numpy as np
import pytest

from sftflow.data.signals import embeddings as semantic
from sftflow.errors import SftflowError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import quality as bench  # noqa: E402
from quality_pools import FACT_QUESTIONS, FACTS, OTHER_LANGUAGE  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return semantic.load_encoder()


def test_missing_extra_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # what an install without it looks like
    with pytest.raises(SftflowError, match=r"^semantic signals need the semantic extra: "
                                           r"pip install 'sftflow\[semantic\]'$"):
        semantic.load_encoder()


def test_embeddings_are_unit_vectors_that_mean_something(encoder):
    e = semantic.embed(["How do I reset my router?", "Hold the reset button for ten seconds, then log in again.",
                        "Jane Austen wrote Pride and Prejudice in 1813."], encoder)
    assert e.shape == (3, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_unrelated_answers_are_flagged_and_right_ones_are_not(encoder):
    facts = FACTS[:30]
    prompts = [FACT_QUESTIONS[rel][0].format(s=subj) for rel, subj, _, _ in facts]
    answers = [sentence for *_, sentence in facts]
    wrong = [3, 11, 19, 27]
    for i in wrong:  # another fact's answer, from another relation: right form, wrong content
        answers[i] = next(f[3] for f in FACTS[30:] if f[0] != facts[i][0])
    result = semantic.unrelated_answers(semantic.embed(prompts, encoder), semantic.embed(answers, encoder))
    assert result.reason == "unrelated_answer"
    assert sorted(np.flatnonzero(result.flags)) == wrong
    assert set(result.details) == set(wrong) and "similarity" in result.details[wrong[0]]


def test_outliers_are_rows_far_from_their_task(encoder):
    rng = random.Random(0)
    answers = [bench.json_extract(rng)[1] for _ in range(40)]  # one task: support messages → JSON
    answers[5] = OTHER_LANGUAGE["German"][0]  # wrong language
    answers[17] = FACTS[0][3]  # wrong task: "The capital of Australia is Canberra."
    flags = semantic.outliers(semantic.embed(answers, encoder), ["json"] * len(answers))
    assert flags.reason == "semantic_outlier"
    assert sorted(np.flatnonzero(flags.flags)) == [5, 17], np.round(flags.values, 2)


def test_paraphrased_questions_cluster_and_different_ones_do_not(encoder):
    rows = []
    for rel, subj, _, sentence in FACTS[:12]:
        rows += [(q.format(s=subj), sentence) for q in FACT_QUESTIONS[rel][:2]]  # two phrasings per fact
    p = semantic.embed([q for q, _ in rows], encoder)
    a = semantic.embed([ans for _, ans in rows], encoder)
    scores = [0.9, 1.0] * 12  # the second phrasing scores higher: it is the one kept
    clusters = semantic.near_duplicates(semantic.pair_embeddings(p, a), scores)
    assert list(clusters.keeper) == [i + 1 - i % 2 for i in range(24)]  # pairs (0,1), (2,3), … keep 1, 3, …
    assert list(clusters.size) == [2] * 24 and clusters.duplicates.sum() == 12


def test_near_duplicate_clusters_are_single_link_and_keep_the_best_scored_member():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16))
    vecs = np.stack([base[0], base[0] + 0.05 * rng.normal(size=16), base[1], base[2],
                     base[2] + 0.05 * rng.normal(size=16), base[2] + 0.05 * rng.normal(size=16)])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    sims = vecs @ vecs.T
    assert sims[0, 1] > 0.95 and sims[3, 4] > 0.95 and sims[0, 2] < 0.9  # the oracle's premise
    clusters = semantic.near_duplicates(vecs, scores=[0.5, 0.5, 1.0, 0.2, 0.9, 0.9], threshold=0.95, block=2)
    assert list(clusters.keeper) == [0, 0, 2, 4, 4, 4]  # ties keep the first; 4 outscores 3 and 5
    assert list(clusters.size) == [2, 2, 1, 3, 3, 3]
    assert list(clusters.duplicates) == [False, True, False, True, False, True]


def test_rows_with_another_answer_or_other_numbers_never_join(encoder):
    prompts = ["Is 391 divisible by 17?", "Is 392 divisible by 17?", "What is the capital of Peru?",
               "Which city is the capital of Peru?", "Which city is the capital of Peru ?"]
    answers = ["Yes.", "No.", "The capital of Peru is Lima.", "The capital of Peru is Lima", "Cusco."]
    p, a = semantic.embed(prompts, encoder), semantic.embed(answers, encoder)
    pairs = semantic.pair_embeddings(p, a)
    assert pairs[0] @ pairs[1] > 0.7  # the premise: embeddings alone would not keep these apart at lower thresholds
    keys = semantic.duplicate_keys(prompts, answers)
    assert keys[2] == keys[3] and len({keys[0], keys[1], keys[2], keys[4]}) == 4  # the answer loosely, prompt numbers
    clusters = semantic.near_duplicates(pairs, threshold=0.0, keys=keys)  # every pair close enough: keys decide
    assert list(clusters.keeper) == [0, 1, 2, 2, 4]
