"""The input files of prepare: every data.sources entry (files, hub datasets, save_to_disk folders),
the `sftflow synth` candidates and the general mix-in data, each file once, with how to read it.

What each entry holds is answered by `data/read`'s `iter_sources()`, as for synth and
decontamination; here only which entries prepare reads, once each, and that it never reads its own outputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from sftflow.config import Config
from sftflow.data.read import Source, iter_sources
from sftflow.data.signals.rows import SourceSpec
from sftflow.errors import SftflowError


def list_sources(cfg: Config) -> Iterator[tuple[SourceSpec, Source]]:
    """(how to read it, what to read) for every input file, each file once however many entries name it."""
    seen: set[str] = set()
    for spec, source in _listed_sources(cfg):
        if source.key not in seen:
            seen.add(source.key)
            yield spec, source


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


def _listed_sources(cfg: Config) -> Iterator[tuple[SourceSpec, Source]]:
    listed = set()
    for i, entry in enumerate(cfg.data.sources):
        found = list(iter_sources(entry, cfg.root, f"data.sources[{i}]"))
        files = [s.path for s in found if s.part is None]
        if files:
            _check_output_outside(cfg, entry.path, files)
        for s in found:
            listed.update([s.path.resolve()] if s.path else [])
            yield SourceSpec(s.display, entry.format, entry.mapping, entry.origin, source=i), s
    synth = cfg.data.synth
    output = cfg.path(synth.output)
    if synth.include and output.is_file() and output.resolve() not in listed:  # `sftflow synth` candidates
        for s in iter_sources(str(output), cfg.root, "data.synth.output"):
            yield SourceSpec(s.display, "messages", {}, "synthetic"), s
    if cfg.data.mix:
        m = cfg.data.mix
        for s in iter_sources(m.path, cfg.root, "data.mix.path"):
            yield SourceSpec(s.display, m.format, {}, "general-mix", mix=True), s
