"""Sources that are datasets rather than files: a Hugging Face hub id or a `save_to_disk` folder.

    data:
      sources:
        - {path: tatsu-lab/alpaca, split: train}     # through datasets.load_dataset (offline: from its cache)
        - {path: raw/saved, split: train}             # a folder written by Dataset(Dict).save_to_disk

A local path always wins: a `path` is a hub id only when nothing exists at it (relative to the
config) and it looks like one (`name` or `org/name`, no file suffix). Each split is one source
"file" to the rest of prepare, shown as `org/name[train]`; a row's "line" in the ledger is its
1-based row number in that split, which does not change between runs. The rows read are held
against the split's row count in datasets' own metadata (`dataset_info.json`, else the Arrow
tables), so a row skipped on the way stops prepare as a short text file would.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftflow.data.read.account import RawRow, ReadAccount
from sftflow.errors import SftflowError, SftflowWarning

SAVED = ("dataset_info.json", "state.json", "dataset_dict.json")  # what save_to_disk writes


@dataclass
class DatasetPart:
    """One split of a dataset, read as one source file."""

    display: str  # how the ledger and the card name it: org/name[train]
    dataset: Any  # a datasets.Dataset
    expected_rows: int  # the split's row count as datasets' metadata states it
    key: str  # identity, so one split named twice is read once


def is_saved_dataset(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in SAVED)


def load_saved(folder: Path):
    import datasets

    try:
        return datasets.load_from_disk(str(folder))
    except Exception as err:  # datasets raises several types for a damaged folder
        raise SftflowError(f"{folder}: not a readable dataset saved with datasets.save_to_disk ({err})") from err


def _offline() -> bool:
    import datasets.config

    return bool(datasets.config.HF_HUB_OFFLINE)


def load_hub(source, root: Path, key: str):
    """datasets.load_dataset(path, subset, revision); offline it reads datasets' cache."""
    import datasets

    try:
        data = datasets.load_dataset(source.path, name=source.subset, revision=source.revision)
    except ConnectionError as err:
        import datasets.config

        why = ("offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)" if _offline()
               else f"the Hub cannot be reached ({err})")
        raise SftflowError(f"{key}: {source.path!r} is not a local path (under {root}) and is not in the Hugging Face "
                           f"datasets cache ({datasets.config.HF_DATASETS_CACHE}); {why}: load it once online, "
                           "or check the path") from err
    except datasets.exceptions.DatasetNotFoundError as err:
        raise SftflowError(f"{key}: {source.path!r} is not a local path (under {root}) nor a dataset on the Hub "
                           f"({str(err).splitlines()[0]}); check the path (relative to the config file) or the id") from err
    except (ValueError, FileNotFoundError) as err:  # an unknown subset, a broken cache
        raise SftflowError(f"{key}: {source.path}: {' '.join(str(err).split())}") from err
    if source.revision and _offline():
        warnings.warn(f"{key}: offline, revision {source.revision!r} of {source.path} cannot be checked; the cached "
                      "copy is used", SftflowWarning, stacklevel=3)
    return data


def split_parts(data, name: str, split: str | None, key: str, subset: str | None, hub: bool) -> list[DatasetPart]:
    import datasets

    label = f"{name}:{subset}" if subset else name
    if isinstance(data, datasets.Dataset):  # one split saved on its own
        if split:
            raise SftflowError(f"{key}.split: {name} holds a single dataset without named splits; remove split")
        return [_part(data, label, None, hub)]
    if split is not None and split not in data:
        raise SftflowError(f"{key}.split: {name} has no split {split!r}; it has {', '.join(map(repr, data))}")
    return [_part(data[s], label, s, hub) for s in ([split] if split else list(data))]


def _part(ds, label: str, split: str | None, hub: bool) -> DatasetPart:
    """A split and its row count: for a hub dataset from dataset_info.json, written when the cache was
    built; for a saved folder from its Arrow tables (its info may describe the data before a select)."""
    display = f"{label}[{split}]" if split else label
    info = ds.info.splits.get(split) if hub and split and ds.info.splits else None
    expected = info.num_examples if info is not None and info.num_examples else ds.num_rows
    files = ",".join(sorted(os.path.realpath(f["filename"]) for f in ds.cache_files))
    return DatasetPart(display, ds, expected, f"{display}|{files}")


def read_saved(path: Path, account: ReadAccount) -> Iterator[RawRow]:
    """Every split of a save_to_disk folder, named `folder[split]`, as one file to `read_rows`."""
    parts = split_parts(load_saved(path), str(path), None, str(path), None, hub=False)
    account.expected_rows = sum(part.expected_rows for part in parts)
    for part in parts:
        for i, row in enumerate(part.dataset):
            yield RawRow(part.display, i + 1, row)


def read_part(part: DatasetPart, account: ReadAccount) -> Iterator[RawRow]:
    """The rows of one split with their 1-based row numbers; `account` checks them against the metadata."""
    account.expected_rows = part.expected_rows
    for i, row in enumerate(part.dataset):
        account.rows += 1
        yield RawRow(part.display, i + 1, row)
