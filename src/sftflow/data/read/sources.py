"""Which rows does this source hold? `iter_sources` answers it once for prepare (data.sources, the
synthetic candidates, data.mix), synth (its seeds) and the decontamination benchmarks: a path, folder
or glob of files, a `save_to_disk` folder or a hub dataset id becomes the `Source`s it names, each
read with `Source.rows`.

A local path always wins: a path is a hub id only when nothing exists at it (relative to the config)
and it looks like one (`name` or `org/name`, no data file suffix).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from sftflow.config.data import DataSource
from sftflow.data.read.account import RawRow, ReadAccount
from sftflow.data.read.hub import DatasetPart, is_saved_dataset, load_hub, load_saved, read_part, split_parts
from sftflow.data.read.registry import ReadOptions, has_data_suffix, read_rows, reader_for, supported
from sftflow.errors import SftflowError
from sftflow.io import display_path

# a hub repo id: `name` or `org/name`, letters, digits, '-', '_', '.' (no leading dot or dash)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


@dataclass
class Source:
    """One file, or one split of a dataset, that a source entry names."""

    display: str  # how the ledger, the card and messages name it: raw/a.jsonl, org/name[train]
    key: str  # identity: a file or split that two entries name is read once
    path: Path | None  # the file; None for a split of a dataset
    part: DatasetPart | None = None  # a split of a hub dataset or save_to_disk folder
    options: ReadOptions = field(default_factory=ReadOptions)

    def rows(self, account: ReadAccount | None = None, bad_csv: str = "reject") -> Iterator[RawRow]:
        """Its rows in order; `account` is filled as they are read (for `check_account`)."""
        account = account if account is not None else ReadAccount()
        if self.part is not None:
            return read_part(self.part, account)
        return read_rows(self.path, account, replace(self.options, bad_csv=bad_csv))


def iter_sources(entry: DataSource | str, root: Path, key: str = "data.sources") -> Iterator[Source]:
    """The files and dataset splits a data source entry (or a bare path, glob or hub id) names, in order.
    `key` is the config key errors name (data.sources[2], data.decontaminate[0])."""
    if isinstance(entry, str):
        entry = DataSource(path=entry)
    parts = dataset_parts(entry, root, key)
    if parts is not None:  # a hub id or a save_to_disk folder: one part per split
        for part in parts:
            yield Source(part.display, part.key, None, part)
        return
    for path in resolve_sources(entry.path, root, key):
        shown = display_path(path, root)
        yield Source(shown, os.path.realpath(path), path, options=ReadOptions(entry.encoding, entry.field, name=shown))


def is_hub_id(pattern: str, root: Path) -> bool:
    """A source path that names no local file or folder and looks like `org/name`."""
    if not HUB_ID.fullmatch(pattern) or ".." in pattern or has_data_suffix(pattern):
        return False
    return not (root / pattern).exists()


def dataset_parts(entry: DataSource, root: Path, key: str) -> list[DatasetPart] | None:
    """The splits an entry names when it is a hub id or a save_to_disk folder; None for plain files."""
    full = Path(entry.path).expanduser()
    full = full if full.is_absolute() else root / full
    if is_saved_dataset(full):
        if entry.subset or entry.revision:
            raise SftflowError(f"{key}: subset and revision apply to hub datasets; {entry.path} is a folder saved "
                               "with save_to_disk — remove them")
        return split_parts(load_saved(full), display_path(full, root), entry.split, key, None, hub=False)
    if is_hub_id(entry.path, root):
        return split_parts(load_hub(entry, root, key), entry.path, entry.split, key, entry.subset, hub=True)
    for name in ("split", "subset", "revision"):
        if getattr(entry, name):
            raise SftflowError(f"{key}.{name}: applies to hub datasets and save_to_disk folders, but "
                               f"{entry.path!r} is a file, folder or glob of files; remove it")
    return None


def resolve_sources(pattern: str, root: Path, key: str = "data.sources") -> list[Path]:
    """A path, folder or glob (relative to the config) → the files it names, sorted, each file once
    (a symlink loop or two links to one file do not read it twice)."""
    p = Path(pattern).expanduser()
    full = p if p.is_absolute() else root / p
    if any(ch in pattern for ch in "*?["):
        files = _once(Path(f) for f in sorted(glob.glob(str(full), recursive=True)) if Path(f).is_file())
        if not files:
            raise SftflowError(f"{key}: {pattern!r} matches no files under {root}")
        return files
    if not full.exists():
        raise SftflowError(f"{key}: {full} not found; check the path (relative to the config file)")
    if full.is_dir() and not is_saved_dataset(full):
        files = _once(_walk(full))
        if not files:
            raise SftflowError(f"{key}: folder {full} holds no data files; sftflow reads {supported()}")
        return files
    return [full]


def _walk(folder: Path) -> Iterator[Path]:
    """Data files under a folder, sorted; symlinked folders are followed once (a loop ends there)."""
    seen = set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(names):
            f = Path(top) / name
            if f.is_file() and reader_for(f) is not None:
                yield f


def _once(paths) -> list[Path]:
    out, seen = [], set()
    for p in sorted(paths):
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out
