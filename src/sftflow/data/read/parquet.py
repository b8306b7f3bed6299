"""Parquet: rows in batches, numbered from 1, held against the row count the file's metadata states."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sftflow.data.read.account import RawRow, ReadAccount
from sftflow.errors import SftflowError


def read_parquet(path: Path, account: ReadAccount) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    name = str(path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise SftflowError(f"{path}: not a readable Parquet file ({err})") from err
    account.expected_rows = pf.metadata.num_rows
    n = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield RawRow(name, n, row)
