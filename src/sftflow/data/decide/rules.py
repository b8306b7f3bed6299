"""Fates and splits of every record: duplicates, split groups, general mix-in and synthetic rules.

Most records share nothing with any other: no duplicate, no common prompt or group. Such a
record's fate follows from its own keys — kept unless filtered, its split a hash of its own
key — so it is worked out a block at a time from the column files. The rest (records on an
edge: exact or near duplicate, same prompt or group field, near-duplicate prompt; general
mix-in rows; synthetic rows) are gathered and decided together, so memory grows with them,
not with the input. Stratified splits rank every group within its label, so with
`data.stratify_field` every record is decided together.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import replace

import numpy as np

from sftflow.config.data import DataConfig
from sftflow.data.columns import ColumnStore
from sftflow.data.decide.conflicts import conflict_groups, resolve
from sftflow.data.decide.dedup import (
    NearDupIndex,
    best_of_clusters,
    components,
    equal_key_pairs,
    equal_key_pairs_in_blocks,
    hash64,
)
from sftflow.data.decide.fate import DUPLICATE, FILTERED, KEPT, UNUSED, Fates
from sftflow.data.decide.split import assign_splits, split_keys
from sftflow.data.sizes import SIZES, Sizes
from sftflow.data.step import Step
from sftflow.errors import SftflowWarning
from sftflow.progress import phase

# A near-duplicate prompt group larger than this (rows, and share of the data) is a chain through
# templated prompts, not one question asked twice: splitting by it would put most data in one split.
MAX_GROUP_ROWS = 50
MAX_GROUP_SHARE = 0.02


class Decide(Step):
    """Every record's fate and split under the data settings (dedup, split, conflicts, synth, mix, sources)."""

    name = "decide"

    def __init__(self, d: DataConfig, sizes: Sizes = SIZES):
        super().__init__()
        self.d, self.sizes = d, sizes

    def run(self, keys, source_of: dict[str, int], semantic_edges: np.ndarray | None) -> Fates:
        """Fates of the records in `keys` (account/collect.py); `source_of`: each file's data.sources entry."""
        with phase("prepare: duplicates, conflicts and splits"):
            file_source = np.array([source_of.get(f, -1) for f in keys.files.values], dtype=np.int64)
            fate = decide(keys.store, keys.strata, keys.near_whole, keys.near_prompt, self.d, file_source,
                          semantic_edges, self.sizes.partition_keys)
        self.counts.update(decided_together=len(fate.rows), warnings=len(fate.warnings))
        return fate


def decide(store: ColumnStore, strata: list | None, near_whole: NearDupIndex, near_prompt: NearDupIndex,
           d: DataConfig, file_source: np.ndarray | None = None, semantic_edges: np.ndarray | None = None,
           partition_keys: int = SIZES.partition_keys) -> Fates:
    """Fates of all records in the store; writes its "split" column for the records not in Fates.rows.
    `file_source`: the data.sources entry of each file code (-1: none), for the source weights.
    `semantic_edges`: record pairs the semantic step found to be duplicates (signals/semantic.py).
    `partition_keys`: equal keys are looked for this many keys at a time."""
    n = len(store)
    keys = functools.partial(_equal_keys, store, max_keys=partition_keys)
    near = d.dedup.near
    none = np.zeros((0, 2), dtype=np.int64)
    dup_edges = [keys("exact"), near_whole.pairs() if near else none] + ([] if semantic_edges is None else [semantic_edges])
    split_edges = [keys("prompt"), keys("own")]
    prompt_edges = near_prompt.pairs() if near else none
    if strata is not None:
        rows = np.arange(n)
    else:
        weighted = _weighted_files(d, file_source)  # every row of a weighted source is decided together
        flagged = [start + np.flatnonzero(b["mix"] | b["synthetic"] | (False if weighted is None else weighted[b["file"]]))
                   for start, b in store.blocks("mix", "synthetic", "file")]
        rows = np.unique(np.concatenate([e.ravel() for e in (*dup_edges, *split_edges, prompt_edges)] + flagged))
    isolated = _split_the_rest(store, rows, d)
    sub = {name: store.gather(name, rows) for name in ("id", "file", "line", "score", "filter", "mix", "exact", "own",
                                                       "synthetic", "answer")}
    local = functools.partial(np.searchsorted, rows)  # record index → position in `rows`
    fates = _decide_together(sub, strata, [local(e) for e in dup_edges], [local(e) for e in split_edges],
                             local(prompt_edges), isolated, d, file_source)
    # from positions in `rows` back to record indices
    keeper = rows[fates.keeper]
    keepers = np.unique(keeper[fates.state == DUPLICATE])
    at = local(keepers)
    return replace(fates, rows=rows, keeper=keeper,
                   keepers={"row": keepers, **{name: sub[name][at] for name in ("id", "file", "line")}},
                   why_unused={int(rows[i]): why for i, why in fates.why_unused.items()},
                   weighted_out=rows[fates.weighted_out])


def _equal_keys(store: ColumnStore, name: str, max_keys: int) -> np.ndarray:
    return equal_key_pairs_in_blocks(lambda: ((s, b[name]) for s, b in store.blocks(name)), len(store), max_keys)


def _weighted_files(d: DataConfig, file_source: np.ndarray | None) -> np.ndarray | None:
    """Per file code: whether its rows come from a data.sources entry with a weight (None: no weights)."""
    if file_source is None or d.sources[0].weight is None:
        return None
    weighted = np.array([s.weight is not None for s in d.sources] + [False])
    return weighted[file_source]  # -1 (not a data.sources entry) picks the final False


def _split_the_rest(store: ColumnStore, rows: np.ndarray, d: DataConfig) -> dict[str, int]:
    """Write the store's "split" column: the split of each record outside `rows` that is not
    filtered (-1 for the others), from its own key. Returns how many are kept, and in train."""
    fractions = d.split.model_dump()
    count = {"kept": 0, "train": 0}

    def blocks():
        for start, b in store.blocks("own", "filter"):
            lo, hi = np.searchsorted(rows, [start, start + len(b["own"])])
            if hi - lo == len(b["own"]):  # all decided together
                yield np.full(len(b["own"]), -1, dtype=np.int8)
                continue
            split = split_keys(b["own"], d.seed, fractions)
            split[b["filter"] > 0] = -1
            split[rows[lo:hi] - start] = -1
            count["kept"] += int((split >= 0).sum())
            count["train"] += int((split == 0).sum())
            yield split

    store.add_column("split", np.int8, blocks())
    return count


def _decide_together(col: dict[str, np.ndarray], strata: list | None, dup_edges: list[np.ndarray],
                     split_edges: list[np.ndarray], prompt_edges: np.ndarray, isolated: dict[str, int],
                     d: DataConfig, file_source: np.ndarray | None = None) -> Fates:
    """Fates of a set of records given their keys and the edges between them (positions in the set).
    `isolated`: how many examples outside the set are kept and in train (the group-size limit,
    mix ratio and synthetic cap count them too)."""
    n = len(col["id"])
    scores, is_mix = col["score"], col["mix"]
    filtered = col["filter"] > 0
    # keeper: task data before general data, then best quality, then first seen
    keeper, duplicate, semantic = _duplicates(n, dup_edges, ~filtered, scores - 2.0 * is_mix)
    kept = ~filtered & ~duplicate
    task = kept & ~is_mix
    split_edges = [_chain_within(n, e, task) for e in split_edges]
    groups, near_prompts, notes = _split_groups(n, split_edges, prompt_edges, task, isolated["kept"], d)
    idx = np.flatnonzero(task)
    split = np.full(n, -1, dtype=np.int8)
    split[idx] = assign_splits(col["own"][idx], groups[idx], d.seed, d.split.model_dump(),
                               [strata[i] for i in idx] if strata is not None else None)

    unused = np.zeros(n, dtype=bool)
    why_unused: dict[int, str] = {}  # position → why (default: beyond the mix ratio)
    conflict = conflict_groups(n, split_edges[0], near_prompts, col["answer"], task)
    for i, why in resolve(conflict, col["answer"], col["synthetic"], scores, d.conflicts).items():
        unused[i], split[i], why_unused[i] = True, -1, why
    task = task & ~unused
    synth = _synthetic_rules(col["synthetic"] & task, task, split, groups, col["own"], scores, col["id"],
                             isolated["train"], d)
    for i, why in synth.pop("unused").items():
        unused[i], split[i], why_unused[i] = True, -1, why
    weighted_out, note = _source_weights(col, task & ~unused & (split == 0), file_source, d)
    unused[weighted_out], split[weighted_out] = True, -1
    notes += note
    _general_mix(col["id"], kept & is_mix, split, unused, isolated["train"], d)
    state = np.full(n, KEPT, dtype=np.int8)
    state[unused] = UNUSED
    state[duplicate] = DUPLICATE
    state[filtered] = FILTERED
    split[state != KEPT] = -1
    return Fates(rows=np.arange(n), state=state, split=split, keeper=keeper,
                 near=duplicate & (col["exact"] != col["exact"][keeper]), keepers={}, why_unused=why_unused,
                 synthetic=synth, warnings=notes, conflict=conflict, weighted_out=weighted_out, semantic=semantic)


def _duplicates(n: int, dup_edges: list[np.ndarray], active: np.ndarray,
                rank: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keeper, duplicate, semantic): each record's cluster keeper (the best `rank`, then the first
    seen), which active records are duplicates of another, and which of those only the embeddings
    joined to their keeper (empty without semantic edges). `dup_edges`: equal exact keys (transitive),
    then MinHash pairs and semantic pairs (not transitive)."""
    exact_edges, *pairs = dup_edges
    pairs = [e[active[e[:, 0]] & active[e[:, 1]]] for e in pairs]
    dup_edges = [_chain_within(n, exact_edges, active), *pairs]
    keeper = best_of_clusters(components(n, *dup_edges), rank)
    duplicate = active & (keeper != np.arange(n))
    semantic = np.zeros(0, dtype=bool)
    if len(pairs) > 1:
        plain = components(n, *dup_edges[:2])
        semantic = duplicate & (plain != plain[keeper])
    return keeper, duplicate, semantic


def _split_groups(n: int, split_edges: list[np.ndarray], prompt_edges: np.ndarray, task: np.ndarray,
                  isolated_kept: int, d: DataConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(group of each record, near-duplicate prompt pairs that group examples, warnings). Equal prompts
    and groups always share a split; near-duplicate prompts too, unless they chain into a group too
    large for the splits."""
    groups = components(n, *split_edges)
    notes = []
    near_prompts = np.zeros((0, 2), dtype=np.int64)
    if d.dedup.near:
        near = prompt_edges[task[prompt_edges[:, 0]] & task[prompt_edges[:, 1]]]
        joined = components(n, *split_edges, near)
        sizes = np.bincount(joined[task]) if task.any() else np.zeros(1, dtype=np.int64)
        total = int(task.sum()) + isolated_kept
        limit = max(MAX_GROUP_ROWS, int(MAX_GROUP_SHARE * total))
        if sizes.max() <= limit:
            groups, near_prompts = joined, near
        else:  # templated prompts chain into one giant group that would swallow a whole split
            notes.append(f"near-duplicate prompts chain {int(sizes.max())} of {total} examples into one "
                         "group (templated prompts?); splits group exact prompts only — see the 13-gram leakage "
                         "report, or set data.dedup.threshold higher")
    return groups, near_prompts, notes


def _general_mix(ids: np.ndarray, mix_kept: np.ndarray, split: np.ndarray, unused: np.ndarray, isolated_train: int,
                 d: DataConfig) -> None:
    """data.mix: general examples into train at the configured ratio to the task's training rows, chosen by a
    seeded hash of the id; the rest unused. Edits `split` and `unused` in place."""
    mix_kept = np.flatnonzero(mix_kept)
    if not d.mix or not len(mix_kept):
        return
    r = d.mix.ratio
    want = int(round(r / (1 - r) * (int((split == 0).sum()) + isolated_train)))
    order = sorted(mix_kept, key=lambda i: hash64(f"{d.seed}:mix:{int(ids[i]):016x}"))
    split[order[:want]] = 0
    unused[order[want:]] = True
    if want > len(mix_kept):
        warnings.warn(f"data.mix: wanted {want} general examples for ratio {r:g}, only {len(mix_kept)} usable",
                      SftflowWarning, stacklevel=4)  # at decide()'s caller, as before


def _chain_within(n: int, equal_key_edges: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Edges chaining the `members` that hold equal keys. The edges given chain *all* records
    with a key (equal_key_pairs), so dropping the ones that touch a non-member (filtered, a
    duplicate) would cut the chain in two; the members of each chain are linked directly instead."""
    labels = components(n, equal_key_edges)
    idx = np.flatnonzero(members)
    return idx[equal_key_pairs(labels[idx])]


def _synthetic_rules(is_synth: np.ndarray, task: np.ndarray, split: np.ndarray, groups: np.ndarray,
                     own: np.ndarray, scores: np.ndarray, ids: np.ndarray, isolated_train: int, d: DataConfig) -> dict:
    """Keep synthetic examples out of test (data.synth.in_test) and under data.synth.max_train_share.

    A synthetic group that landed in test is re-split over train and val alone (the whole group
    moves, so nothing leaks); synthetic members of a group with human test examples cannot move
    without leaking, so they are left unused. Over the cap, the lowest-scored synthetic training
    examples are left unused. Edits `split` in place; returns counts and {position: why} to leave unused.
    `isolated_train`: human training examples not among these records.
    """
    s, f = d.synth, d.split
    out: dict = {"moved_out_of_test": 0, "left_out_of_test": 0, "over_cap": 0, "unused": {}}
    if not s.in_test:
        in_test = is_synth & (split == 2)
        stuck = in_test & np.isin(groups, groups[task & ~is_synth & (split == 2)])
        move = np.flatnonzero(in_test & ~stuck)
        if len(move) and f.train + f.val > 0:
            rest = {"train": f.train / (f.train + f.val), "val": f.val / (f.train + f.val), "test": 0.0}
            split[move] = assign_splits(own[move], groups[move], d.seed, rest)
            out["moved_out_of_test"] = len(move)
        else:
            stuck |= in_test
        for i in np.flatnonzero(stuck).tolist():
            out["unused"][i] = "synthetic, in a group with human test examples (data.synth.in_test: false)"
        out["left_out_of_test"] = int(stuck.sum())
    if s.max_train_share is not None:
        in_train = [i for i in np.flatnonzero(is_synth & (split == 0)).tolist() if i not in out["unused"]]
        human = int((task & ~is_synth & (split == 0)).sum()) + isolated_train
        allowed = int(s.max_train_share / (1 - s.max_train_share) * human + 1e-9)
        if len(in_train) > allowed:
            order = sorted(in_train, key=lambda i: (-float(scores[i]), hash64(f"{d.seed}:synth:{int(ids[i]):016x}")))
            for i in order[allowed:]:
                out["unused"][i] = f"synthetic beyond data.synth.max_train_share {s.max_train_share:g}"
            out["over_cap"] = len(in_train) - allowed
    return out


def _source_weights(col: dict[str, np.ndarray], in_train: np.ndarray, file_source: np.ndarray | None,
                    d: DataConfig) -> tuple[np.ndarray, list[str]]:
    """Training rows to leave unused so that each data.sources entry's share of train is its weight.

    Runs on train only, after the split, so val and test never depend on the weights. Rows are never
    repeated: the source with the fewest training rows for its share sets the size of train, and
    the others keep that share of it, chosen by a seeded hash of the id (the same every run).
    Returns (positions to leave unused, warnings)."""
    sources = d.sources
    if file_source is None or not len(file_source) or sources[0].weight is None:
        return np.zeros(0, dtype=np.int64), []
    source = np.append(file_source, -1)[col["file"]]
    total = sum(s.weight for s in sources)
    members = [np.flatnonzero(in_train & (source == i)) for i in range(len(sources))]
    have = [k for k, m in enumerate(members) if len(m)]
    size = min((len(members[k]) * total / sources[k].weight for k in have), default=0.0)  # rows of train
    out, report, notes = [], [], []
    for k, m in enumerate(members):
        use = min(len(m), int(sources[k].weight / total * size + 0.5))
        rank = sorted(m.tolist(), key=lambda i: hash64(f"{d.seed}:weight:{int(col['id'][i]):016x}"))
        out += rank[use:]
        report.append({"train_rows": len(m), "used": use})
        if len(m) == 0:
            notes.append(f"data.sources[{k}] ({sources[k].path}) has no training rows; its weight cannot be met")
    left = sum(r["train_rows"] - r["used"] for r in report)
    if left > 0.5 * sum(r["train_rows"] for r in report):
        short = min(have, key=lambda k: len(members[k]) / sources[k].weight)
        notes.append(f"data.sources weights leave {left} of {sum(r['train_rows'] for r in report)} training rows "
                     f"unused (source_weight): {sources[short].path} has the fewest for its share, and rows are never "
                     "repeated; add data to it or lower the other weights")
    return np.array(sorted(out), dtype=np.int64), notes
