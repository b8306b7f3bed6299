"""The input files of prepare: every data.sources entry (files, hub datasets, save_to_disk folders),
the `sftflow synth` candidates and the general mix-in data, each file once, with how to read it.

Moved here unchanged from prepare.py; the readers' own listing (data/read/) replaces it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from sftflow.config import Config
from sftflow.data.hub import DatasetPart, dataset_parts
from sftflow.data.load import resolve_sources
from sftflow.data.signals.rows import SourceSpec
from sftflow.errors import SftflowError


def display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def list_sources(cfg: Config) -> Iterator[tuple[SourceSpec, Path]]:
    """(how to read it, path) for every input file, each file once however many entries name it."""
    seen: set[str] = set()
    for spec, path in _listed_sources(cfg):
        real = path.key if isinstance(path, DatasetPart) else os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            yield spec, path


def _check_output_outside(cfg: Config, pattern: str, files: list[Path]) -> None:
    """prepare must never read its own outputs (a re-run would read them as more rows)."""
    out = cfg.data_dir.resolve()
    globbed = any(ch in pattern for ch in "*?[")
    base = Path(re.split(r"[*?[]", pattern)[0] or ".") if globbed else Path(pattern)
    base = (base if base.is_absolute() else cfg.root / base).resolve()
    folder = base.is_dir() if not globbed else True  # a file named on its own reads nothing else
    recursive = "**" in pattern or not globbed
    if (folder and (out == base or (recursive and base in out.parents))
            or any(out in Path(os.path.realpath(f)).parents for f in files)):
        raise SftflowError(f"data.output_dir {cfg.data.output_dir!r} is inside the source {pattern!r}: prepare would "
                           "read its own outputs on the next run; put the outputs or the raw files in another folder")


def _listed_sources(cfg: Config) -> Iterator[tuple[SourceSpec, Path | DatasetPart]]:
    listed = set()
    for i, source in enumerate(cfg.data.sources):
        parts = dataset_parts(source, cfg.root, i)  # a hub id or a save_to_disk folder: one part per split
        if parts is not None:
            for part in parts:
                yield SourceSpec(part.display, source.format, source.mapping, source.origin, source=i), part
            continue
        files = resolve_sources(source.path, cfg.root)
        _check_output_outside(cfg, source.path, files)
        for path in files:
            listed.add(path.resolve())
            yield SourceSpec(display_path(path, cfg.root), source.format, source.mapping, source.origin, source=i), path
    synth = cfg.data.synth
    output = cfg.path(synth.output)
    if synth.include and output.is_file() and output.resolve() not in listed:  # `sftflow synth` candidates
        yield SourceSpec(display_path(output, cfg.root), "messages", {}, "synthetic"), output
    if cfg.data.mix:
        m = cfg.data.mix
        for path in resolve_sources(m.path, cfg.root):
            yield SourceSpec(display_path(path, cfg.root), m.format, {}, "general-mix", mix=True), path
