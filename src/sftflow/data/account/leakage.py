"""Pass 3: val/test against train, after the splits are written: no exact shared prompt (it cannot
happen by design, so one stops prepare) and the word 13-grams they share (reported).

Prompt keys, and the n-gram hashes of both sides (written to files first), are compared a hash
range at a time, so memory stays bounded however large the splits are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sftflow.data.columns import file_blocks
from sftflow.data.decide.dedup import dedup_texts, key_ranges, keys_in_range
from sftflow.data.decide.split import NGRAM, NgramIndex, ngram_hashes
from sftflow.data.sizes import SIZES, Sizes
from sftflow.data.step import Step
from sftflow.data_folder import TEST, TRAIN, VAL
from sftflow.errors import SftflowError
from sftflow.progress import phase


class Leakage(Step):
    """The leakage report of the splits in the work folder; an exact shared prompt stops prepare."""

    name = "leakage"

    def __init__(self, work: Path, sizes: Sizes = SIZES):
        super().__init__()
        self.work, self.sizes = work, sizes

    def run(self, counts: dict) -> dict:
        with phase("prepare: leakage report (val/test against train)"):
            leakage = leakage_report(self.work, counts["train"], counts["val"] + counts["test"], self.sizes)
        if leakage["exact_prompt_leaks"]:
            raise SftflowError(f"{leakage['exact_prompt_leaks']} val/test prompts also appear in train: "
                               "this should be impossible; please report it with your config")
        self.counts.update(exact_prompt_leaks=leakage["exact_prompt_leaks"],
                           train_with_shared_ngram=leakage["train_with_shared_ngram"])
        return leakage


def leakage_report(work: Path, n_train: int, n_eval: int, sizes: Sizes = SIZES) -> dict:
    """Val/test against train: exact shared prompts (must be 0) and shared word 13-grams (reported).

    Prompt keys, and the n-gram hashes of both sides (written to files first), are compared a
    hash range at a time, so memory stays bounded however large the splits are. The examples
    are the first train rows (in train.jsonl order) that share an n-gram with val/test, each with
    the first val/test example (val.jsonl, then test.jsonl) it shares one with. `sizes`: the hash
    ranges (`ngram_range` n-grams, `partition_keys` prompt keys) and the blocks files are read in."""
    exact = _keys_in_both(work / "prompts.eval.u64", work / "prompts.train.u64", sizes)
    train, evals = work / "ngrams.train.bin", work / "ngrams.eval.bin"
    _write_ngrams([work / TRAIN], train)
    _write_ngrams([work / VAL, work / TEST], evals)
    train_hit = np.zeros(n_train, dtype=bool)
    eval_hit = np.zeros(n_eval, dtype=bool)
    ranges = key_ranges((train.stat().st_size + evals.stat().st_size) // NGRAM_RECORD.itemsize, sizes.ngram_range)
    first: dict[int, int] = {}  # the first train rows with a hit so far → their first val/test row
    for lo, hi in ranges:
        rows, owners = _shared_ngrams(train, evals, lo, hi, sizes.block)
        train_hit[rows] = True
        eval_hit[owners] = True
        # A row among the first 5 at the end is among the first 5 so far whenever it has a hit,
        # so keeping only those loses none of its hits.
        for r in np.unique(rows)[:5].tolist():
            first[r] = min(first.get(r, n_eval), int(owners[rows == r].min()))
        first = dict(sorted(first.items())[:5])
    train.unlink()
    evals.unlink()
    train_ids = _ids_at([work / TRAIN], list(first))
    eval_ids = _ids_at([work / VAL, work / TEST], list(first.values()))
    return {"exact_prompt_leaks": exact, "ngram": NGRAM, "train_with_shared_ngram": int(train_hit.sum()),
            "eval_with_shared_ngram": int(eval_hit.sum()), "eval_examples": n_eval,
            "examples": [{"train": t, "eval": e} for t, e in zip(train_ids, eval_ids, strict=True)]}


NGRAM_RECORD = np.dtype([("hash", "<u8"), ("row", "<i4")])


def _write_ngrams(split_files: list[Path], out: Path) -> None:
    """(n-gram hash, row) of every word 13-gram of every example in the split files, rows
    numbered across the files in order."""
    hashes: list[int] = []
    rows: list[int] = []
    j = 0
    with open(out, "wb") as o:
        for path in split_files:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    h = ngram_hashes(dedup_texts(json.loads(line))[0])
                    hashes += h
                    rows += [j] * len(h)
                    j += 1
                    if len(hashes) >= 100_000:
                        o.write(_ngram_records(hashes, rows))
                        hashes, rows = [], []
        o.write(_ngram_records(hashes, rows))


def _ngram_records(hashes: list[int], rows: list[int]) -> bytes:
    out = np.empty(len(hashes), dtype=NGRAM_RECORD)
    out["hash"] = np.array(hashes, dtype=np.int64).view(np.uint64)  # Python's hashes are signed
    out["row"] = rows
    return out.tobytes()


def _ngrams_in_range(path: Path, lo: np.uint64, hi: np.uint64, block: int):
    """(hashes, rows) of the n-grams in a file whose hash is in [lo, hi], read `block` records at a time."""
    records = keys_in_range(file_blocks(path, NGRAM_RECORD, block), lo, hi, field="hash")[0]
    if not len(records):
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32)
    return records["hash"], records["row"]


def _shared_ngrams(train: Path, evals: Path, lo: np.uint64, hi: np.uint64, block: int):
    """(train row, eval row) for every n-gram with a hash in [lo, hi] that both sides have."""
    index = NgramIndex.of_hashes(*_ngrams_in_range(evals, lo, hi, block))
    return index.matches(*_ngrams_in_range(train, lo, hi, block))


def _ids_at(split_files: list[Path], rows: list[int]) -> list[str]:
    """The ids of the examples at these rows of the split files (numbered across them in order)."""
    want, found, j = set(rows), {}, 0
    for path in split_files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if j in want:
                    found[j] = json.loads(line)["id"]
                j += 1
                if len(found) == len(want):
                    return [found[r] for r in rows]
    return [found[r] for r in rows]


def _keys_in_both(probe: Path, among: Path, sizes: Sizes) -> int:
    """How many keys of the file `probe` also appear in the file `among` (flat uint64 files),
    compared a key range at a time."""
    count = 0
    n = (probe.stat().st_size + among.stat().st_size) // 8
    for lo, hi in key_ranges(n, sizes.partition_keys):
        seen = np.unique(keys_in_range(file_blocks(among, np.uint64, sizes.block), lo, hi)[0])
        count += int(np.isin(keys_in_range(file_blocks(probe, np.uint64, sizes.block), lo, hi)[0], seen).sum())
    return count
