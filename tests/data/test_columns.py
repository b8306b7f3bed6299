"""Per-record key columns on disk: what goes in comes back, in blocks or gathered at given rows."""

import numpy as np
import pytest

from sftflow.data.columns import ColumnStore, file_blocks


def test_columns_round_trip_in_blocks_and_gathered(tmp_path):
    store = ColumnStore(tmp_path / "cols", {"key": np.uint64, "score": np.float32, "flag": bool})
    rng = np.random.default_rng(1)
    key = rng.integers(0, 2**63, size=1000, dtype=np.uint64)
    score = rng.random(1000).astype(np.float32)
    flag = rng.random(1000) < 0.3
    for lo, hi in [(0, 1), (1, 400), (400, 401), (401, 1000)]:  # uneven chunks, one of a single record
        store.append({"key": key[lo:hi].tolist(), "score": score[lo:hi], "flag": flag[lo:hi].tolist()})
    store.close()
    assert len(store) == 1000
    starts, parts = zip(*store.blocks("key", "flag", size=300), strict=True)
    assert starts == (0, 300, 600, 900)
    assert np.array_equal(np.concatenate([p["key"] for p in parts]), key)
    assert np.array_equal(np.concatenate([p["flag"] for p in parts]), flag)
    rows = np.array([0, 5, 299, 300, 301, 999])
    assert np.array_equal(store.gather("score", rows), score[rows])
    assert len(store.gather("key", np.zeros(0, dtype=np.int64))) == 0
    store.add_column("double", np.float64, (b["score"] * 2 for _, b in store.blocks("score", size=128)))
    assert np.array_equal(store.read("double", 990, 2000), score[990:].astype(np.float64) * 2)
    assert [s for s, _ in file_blocks(store.path("key"), np.uint64, size=256)] == [0, 256, 512, 768]


def test_a_chunk_missing_a_column_or_of_uneven_length_is_refused(tmp_path):
    store = ColumnStore(tmp_path, {"a": np.int32, "b": np.int32})
    with pytest.raises(ValueError, match="every column"):
        store.append({"a": [1, 2]})
    with pytest.raises(ValueError, match="every column"):
        store.append({"a": [1, 2], "b": [1]})
    store.close()
