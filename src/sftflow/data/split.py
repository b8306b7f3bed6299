"""Deterministic train/val/test split with a leakage check.

An example's split is a pure function of its group key and the seed (a hash mapped to
[0, 1) and cut at the configured fractions), so re-running gives the same split and
adding data never moves an existing example. By default the group is the prompt, so the
same question cannot appear in train and test with different answers.
"""

from __future__ import annotations

import hashlib

from sftflow.data.dedup import normalise

SPLITS = ("train", "val", "test")


def split_of(group_key: str, seed: int, fractions: dict[str, float]) -> str:
    digest = hashlib.sha256(f"{seed}:{group_key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name in SPLITS:
        edge += fractions[name]
        if u < edge:
            return name
    return next(name for name in reversed(SPLITS) if fractions[name] > 0)


def prompt_text(record: dict) -> str:
    if "text" in record:
        return normalise(record["text"])
    return normalise("\n".join(m["content"] for m in record["messages"][:-1]))


def find_leaks(splits: dict[str, list[dict]]) -> list[tuple[str, str]]:
    """(test id, train id) pairs whose prompts are identical after normalisation."""
    train_prompts = {prompt_text(r): r["id"] for r in splits.get("train", [])}
    leaks = []
    for name in ("val", "test"):
        for r in splits.get(name, []):
            hit = train_prompts.get(prompt_text(r))
            if hit is not None:
                leaks.append((r["id"], hit))
    return leaks
