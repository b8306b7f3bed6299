"""How much of the data prepare's steps hold or handle at once: the sizes that bound its memory.

`prepare(cfg, sizes=Sizes(chunk=7))` runs the chunked and ranged paths on a few hundred rows (the
tests do); the outputs never depend on these sizes, only the memory and time do. Each step is
given them as an argument, so nothing reads a module constant that a caller may have changed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    chunk: int = 2048  # rows converted at a time (a worker's job)
    block: int = 1 << 18  # records read back from a key column or a flat key file at a time (a few MiB)
    write_block: int = 1 << 14  # records written out per block (their keys become Python objects there)
    partition_keys: int = 1 << 18  # keys sorted at once when looking for equal keys (~8 MiB at the peak)
    ngram_range: int = 1 << 20  # n-grams (train and val/test together) matched at once (~30 MiB)
    shingle_slice: int = 1 << 14  # shingles hashed at once: (16k x 128 permutations) x 8 bytes = 16 MiB


SIZES = Sizes()  # the production sizes
