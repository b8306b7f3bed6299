"""A text file's bytes as UTF-8 lines, whatever it was written in: compressed or not (`COMPRESSIONS`: .gz, .zst, .bz2, .xz),
UTF-8 with or without BOM, UTF-16/32 (by BOM, or by the NULs around a first ASCII character, as
RFC 4627 detects JSON's encoding), or a legacy 8-bit encoding (named by `encoding:` on the data
source, or guessed: cp1252, else latin-1, with one warning line naming it). Lines end at \\n, \\r\\n
or a lone \\r.

Every text reader reads through `utf8_blocks`, and `count_lines` counts the same bytes on its own,
so a reader's account can be held against the file.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sftflow.errors import SftflowError, SftflowWarning

BLOCK = 1 << 20
_NEWLINE = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Compression:
    open: Callable[[Path], BinaryIO]
    damaged: Callable[[], tuple[type[Exception], ...]]  # what reading a damaged file raises


def _zstandard():
    try:
        import zstandard
    except ImportError as err:
        raise SftflowError("reading .zst files needs the zstandard package; pip install zstandard") from err
    return zstandard


# Compressed text files: the suffix after the format's own (`rows.jsonl.gz`). Adding one = one entry.
COMPRESSIONS = {
    ".gz": Compression(gzip.open, lambda: (OSError, EOFError)),  # gzip.BadGzipFile is an OSError
    ".zst": Compression(lambda path: _zstandard().open(path, "rb"), lambda: (_zstandard().ZstdError, EOFError)),
    ".bz2": Compression(bz2.open, lambda: (OSError, EOFError)),  # a bad bz2 stream is an OSError
    ".xz": Compression(lzma.open, lambda: (lzma.LZMAError, EOFError)),
}


def compression_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return suffix if suffix in COMPRESSIONS else None


def open_bytes(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when its name ends in a compression's suffix."""
    comp = compression_of(path)
    return COMPRESSIONS[comp].open(path) if comp else open(path, "rb")


def raw_blocks(path: Path) -> Iterator[bytes]:
    comp = compression_of(path)
    damaged = COMPRESSIONS[comp].damaged() if comp else ()
    with open_bytes(path) as f:
        while True:
            try:
                block = f.read(BLOCK)
            except damaged as err:
                raise SftflowError(f"{path}: cannot be decompressed as {comp} ({err}); the file is damaged or not "
                                   "what its suffix says") from err
            if not block:
                return
            yield block


# ---------------------------------------------------------------- encodings


def sniff_bom(head: bytes) -> tuple[str | None, int]:
    """(codec, BOM length) for a file's first bytes; None = UTF-8 as it is."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                       (codecs.BOM_UTF8, None), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            return codec, len(bom)
    if len(head) >= 4:  # no BOM: an ASCII first character shows the encoding by where its NULs are
        zeros = tuple(b == 0 for b in head[:4])
        return {(True, True, True, False): "utf-32-be", (False, True, True, True): "utf-32-le",
                (True, False, True, False): "utf-16-be", (False, True, False, True): "utf-16-le"}.get(zeros), 0
    return None, 0


# one well-formed UTF-8 sequence of two to four bytes
_UTF8_MULTI = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")


def guess_encoding(path: Path) -> str | None:
    """None when the file is UTF-8 (or declares UTF-16/32 by BOM or NULs); else the legacy encoding to
    read it in. A file with no well-formed UTF-8 sequence but bytes over 0x7f was written by a Windows
    spreadsheet or editor: cp1252, or latin-1 when it holds bytes cp1252 leaves undefined. A UTF-8 file
    with a damaged line stays UTF-8 (that line is rejected). Only these two are guessed: a detector that
    weighs dozens of encodings misreads short text, and the warning says how to name another."""
    blocks = raw_blocks(path)
    head = next(blocks, b"")
    if sniff_bom(head) != (None, 0):  # a BOM, or UTF-16/32 by its NULs
        return None
    legacy, undefined, carry = False, False, b""
    for block in _chain_one(head, blocks):
        data = carry + block
        if data.isascii():
            carry = b""
            continue
        if _UTF8_MULTI.search(data):
            return None
        legacy = True
        undefined = undefined or bool(_CP1252_UNDEFINED.search(data))
        carry = data[-3:]  # a sequence cut by the block's end is whole in the next
    return ("latin-1" if undefined else "cp1252") if legacy else None


def _chain_one(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def decide_encoding(path: Path, named: str | None, display: str | None = None) -> str | None:
    """The codec to read a text file in (None: UTF-8, or UTF-16/32 by its BOM): the one named on its data
    source, else a guess, which is named in one warning line."""
    if named is not None:
        return None if codecs.lookup(named).name == "utf-8" else named
    guessed = guess_encoding(path)
    if guessed is not None:
        warnings.warn(f"{display or path}: not UTF-8; read as {guessed} (a guess from its bytes). If that is wrong, "
                      "set encoding: on its data.sources entry, or re-encode the file as UTF-8", SftflowWarning,
                      stacklevel=2)
    return guessed


def utf8_blocks(path: Path, encoding: str | None = None) -> Iterator[bytes]:
    """The file's text as UTF-8 bytes, a block at a time. Text in another encoding is transcoded; a byte
    it cannot decode (or a lone surrogate in UTF-16/32) becomes bytes that are not UTF-8, so only its
    own row is rejected."""
    blocks = raw_blocks(path)
    head = next(blocks, b"")
    if encoding is None:
        codec, skip = sniff_bom(head)
        errors = "surrogatepass"
    else:
        codec, skip, errors = encoding, 0, "surrogateescape"
    if codec is None:
        yield head[skip:]
        yield from blocks
        return
    decoder = codecs.getincrementaldecoder(codec)(errors=errors)
    block = head[skip:]
    while block:
        yield decoder.decode(block).encode("utf-8", "surrogatepass")
        block = next(blocks, b"")
    try:
        yield decoder.decode(b"", final=True).encode("utf-8", "surrogatepass")
    except UnicodeDecodeError as err:
        raise SftflowError(f"{path}: ends in the middle of a {codec} character; the file is truncated") from err


def physical_lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines without their ends; \\n, \\r\\n and a lone \\r each end a line (as Python's universal
    newlines). A last line without an end counts; an empty file has no lines."""
    carry = b""
    for block in blocks:
        data = carry + block
        hold = b""
        if data.endswith(b"\r"):  # its \n may start the next block
            data, hold = data[:-1], b"\r"
        parts = _NEWLINE.split(data) if b"\r" in data else data.split(b"\n")
        carry = parts.pop() + hold
        yield from parts
    if carry:
        yield carry[:-1] if carry.endswith(b"\r") else carry


def count_lines(path: Path, encoding: str | None = None) -> int:
    """Physical lines of a text file, counted from the bytes alone (no parsing): the independent
    count every text reader's account must match."""
    n, last, pending_cr = 0, b"", False
    for block in utf8_blocks(path, encoding):
        if not block:
            continue
        crlf = block.count(b"\r\n") + (pending_cr and block.startswith(b"\n"))
        n += block.count(b"\n") + block.count(b"\r") - crlf
        pending_cr, last = block.endswith(b"\r"), block[-1:]
    return n + (last not in (b"", b"\n", b"\r"))
