"""Conflicting labels: one prompt (or a near-duplicate of it) with different answers.

Contradictory supervision is the costliest noise in SFT: the model is taught two answers to
one question and learns neither. `prepare` groups kept examples whose prompts are equal (the
same key that keeps them in one split) or near-equal (verified MinHash pairs), and calls a
group a conflict when its answers differ (compared loosely: case, spacing and punctuation
ignored). `data.conflicts` decides what happens:

- `report` (default): all are kept and the group is shown in the data card and the ledger;
- `best`: the answer of the best member is kept — human before synthetic, then the highest
  quality score, then the first seen — and members with another answer are left unused;
- `drop`: every member of the group is left unused.

Whatever the setting, a synthetic example whose answer contradicts a human one in its group is
left unused: a teacher model never overrules a person by default.
"""

from __future__ import annotations

import numpy as np

from sftflow.data.decide.dedup import components, equal_key_pairs

SHOWN_GROUPS = 10  # conflict groups written out with their members in the data card


def conflict_groups(n: int, same_prompt: np.ndarray, near_prompt: np.ndarray, answers: np.ndarray,
                    members: np.ndarray) -> np.ndarray:
    """A conflict group label per position (-1: none). `same_prompt`: edges chaining equal prompts
    (all records); `near_prompt`: verified near-duplicate prompt pairs; `members`: the kept task
    examples that take part."""
    idx = np.flatnonzero(members)
    same = components(n, same_prompt)
    edges = [idx[equal_key_pairs(same[idx])]]
    near = near_prompt[members[near_prompt[:, 0]] & members[near_prompt[:, 1]]]
    edges.append(near[answers[near[:, 0]] != answers[near[:, 1]]])  # a near pair joins only when it disagrees
    labels = components(n, *edges)
    out = np.full(n, -1, dtype=np.int64)
    if not len(idx):
        return out
    # a group is a conflict when its members hold more than one distinct answer
    keys = np.unique(np.stack([labels[idx], answers[idx].view(np.int64)], axis=1), axis=0)
    label_ids, answer_counts = np.unique(keys[:, 0], return_counts=True)
    conflicted = label_ids[answer_counts > 1]
    hit = idx[np.isin(labels[idx], conflicted)]
    out[hit] = labels[hit]
    return out


def resolve(groups: np.ndarray, answers: np.ndarray, synthetic: np.ndarray, scores: np.ndarray,
            policy: str) -> dict[int, str]:
    """{position: why it is left unused} for the members of conflict groups under `policy`."""
    unused: dict[int, str] = {}
    for g in np.unique(groups[groups >= 0]):
        members = np.flatnonzero(groups == g)
        human = members[~synthetic[members]]
        size = len(members)
        if policy == "drop":
            for i in members.tolist():
                unused[i] = f"conflicting labels: one of {size} examples of a prompt with different answers (data.conflicts: drop)"
            continue
        if policy == "best":
            pool = human if len(human) else members
            best = pool[np.lexsort((pool, -scores[pool]))[0]]  # highest score, then first seen
            for i in members[answers[members] != answers[best]].tolist():
                unused[i] = (f"conflicting labels: another answer to this prompt was kept (data.conflicts: best, "
                             f"{size} examples)")
            continue
        human_answers = answers[human]
        for i in members[synthetic[members]].tolist():
            if len(human) and answers[i] not in human_answers:
                unused[i] = "conflicting labels: synthetic answer contradicts a human one for this prompt"
    return unused
