"""Per-record key columns on disk, read back a block at a time, and the codes of repeated values.

`prepare` keeps about 60 bytes of keys per record (hashes, score, flags, where it came from).
Held in memory they would grow with the input; here each column is a flat binary file,
appended a chunk at a time during the read pass and read back in blocks, in key ranges,
or at a sorted set of records — so the memory used is set by the block size, not the rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sftflow.data.sizes import SIZES


class ColumnStore:
    """Named fixed-width columns, one file each, all the same length."""

    def __init__(self, folder: Path, dtypes: dict[str, type], block: int = SIZES.block):
        self.folder, self.block = folder, block  # block: records read back at a time
        folder.mkdir(parents=True, exist_ok=True)
        self.dtypes = {name: np.dtype(t) for name, t in dtypes.items()}
        self._files = {name: open(self.path(name), "wb") for name in self.dtypes}  # noqa: SIM115 - closed in close()
        self.n = 0

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.bin"

    def append(self, values: dict[str, list]) -> None:
        """One chunk of records: a list (or array) per column, all of the same length."""
        lengths = {len(v) for v in values.values()}
        if lengths != {len(next(iter(values.values())))} or set(values) != set(self.dtypes):
            raise ValueError(f"a chunk needs every column ({sorted(self.dtypes)}) at one length")
        for name, v in values.items():
            self._files[name].write(np.asarray(v, dtype=self.dtypes[name]).tobytes())
        self.n += lengths.pop()

    def add_column(self, name: str, dtype: type, blocks: Iterator[np.ndarray]) -> None:
        """A derived column, written from blocks in record order."""
        self.dtypes[name] = np.dtype(dtype)
        with open(self.path(name), "wb") as f:
            for b in blocks:
                f.write(np.asarray(b, dtype=self.dtypes[name]).tobytes())

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def __len__(self) -> int:
        return self.n

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Records start to stop - 1 of one column."""
        dtype = self.dtypes[name]
        stop = min(stop, self.n)
        return np.fromfile(self.path(name), dtype=dtype, count=max(0, stop - start), offset=start * dtype.itemsize)

    def blocks(self, *names: str, size: int | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(first record, {column: values}) for consecutive blocks of records."""
        size = size or self.block
        for start in range(0, self.n, size):
            yield start, {name: self.read(name, start, start + size) for name in names}

    def gather(self, name: str, rows: np.ndarray) -> np.ndarray:
        """The column's values at `rows` (sorted record indices), read block by block."""
        out = np.empty(len(rows), dtype=self.dtypes[name])
        for start, block in self.blocks(name):
            lo, hi = np.searchsorted(rows, [start, start + len(block[name])])
            out[lo:hi] = block[name][rows[lo:hi] - start]
        return out


def file_blocks(path: Path, dtype: type, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first position, values) for consecutive blocks of `size` values of a flat binary file of `dtype` values."""
    dtype = np.dtype(dtype)
    n = path.stat().st_size // dtype.itemsize
    for start in range(0, n, size):
        yield start, np.fromfile(path, dtype=dtype, count=min(size, n - start), offset=start * dtype.itemsize)


class Codes:
    """Small integer codes for repeated values (file names, origins, drops, quality reasons), numbered in
    order of first appearance, so a column holds the code and the table the value. `first` values take
    codes 0, 1, ... (e.g. None: 0, not filtered)."""

    def __init__(self, *first):
        self.values: list = []
        self._code: dict = {}
        for v in first:
            self(v)

    def __call__(self, value) -> int:
        """The value's code, a new one if it is new."""
        code = self._code.get(value)
        if code is None:
            code = self._code[value] = len(self.values)
            self.values.append(value)
        return code

    def __getitem__(self, code: int):
        return self.values[code]

    def __len__(self) -> int:
        return len(self.values)
