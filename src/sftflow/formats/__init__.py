"""Detect a raw row's format and convert it to a typed example (`sftflow.example.Example`).

Every source format becomes an `Example`: its `Message`s (system, user, assistant with optional
`tool_calls`, tool results) and the `tools` it declares — or, for continued pre-training rows,
plain `text` — so that one chat template renders all of them. A row that cannot be converted
raises `RowError` naming the field and the reason; the caller writes it to rejects.jsonl. A field
no reader uses is carried (message fields in the message, row fields in the record's `meta`) or
refused by name: nothing is dropped silently.

`FORMATS` below is the one list of formats: the config's `format` choices (config/data.py) and
auto-detection read it, so adding a format is one entry there. It lives outside the data
package because the config reads it and the data package imports the config (no import loops:
tests/test_architecture.py). Each format's conversion is in `converters.py`, reading messages and
tool definitions through `messages.py`; `conversation.py` checks the result, `mapping.py` renames
fields and guesses the mapping a row of unknown format needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sftflow.errors import RowError
from sftflow.example import Example, Message
from sftflow.formats.conversation import check_conversation
from sftflow.formats.converters import (
    from_alpaca,
    from_messages,
    from_prompt_completion,
    from_sharegpt,
    text_field,
)
from sftflow.formats.mapping import apply_mapping, escaped, mapping_hint


@dataclass(frozen=True)
class Format:
    """A row format: the fields that mark it, where auto-detection tries it, how it becomes chat, and the
    other fields it reads (any field neither read nor named here is carried in the record's `meta`)."""

    name: str
    fields: tuple[str, ...]  # a row with all of them is of this format (format: auto)
    rank: int  # auto-detection tries formats by rank, lowest first: `messages` wins over `instruction`
    to_chat: Callable[[dict], Example] | None  # None: plain text for continued pre-training
    reads: tuple[str, ...] = ()


# Every format sftflow reads, in the order the config lists them: adding a format = one entry.
FORMATS = (
    Format("alpaca", ("instruction", "output"), 2, from_alpaca, ("input", "system", "history")),
    Format("sharegpt", ("conversations",), 1, from_sharegpt, ("tools",)),
    Format("messages", ("messages",), 0, from_messages, ("tools",)),
    Format("prompt_completion", ("prompt", "completion"), 3, from_prompt_completion, ("tools",)),
    Format("text", ("text",), 4, None),
)
FORMAT_NAMES = tuple(f.name for f in FORMATS)
BY_NAME = {f.name: f for f in FORMATS}
DETECTION_ORDER = sorted(FORMATS, key=lambda f: f.rank)
READ_BY_SFTFLOW = ("origin", "synthetic")  # rows.py reads these on every format
# What a source's `mapping` may rename a column to: every field some format reads.
MAPPABLE_FIELDS = tuple(sorted({f for fmt in FORMATS for f in (*fmt.fields, *fmt.reads)} | set(READ_BY_SFTFLOW)))


def detect_format(row: dict) -> str:
    """The first format, by detection rank, whose marking fields the row has."""
    for fmt in DETECTION_ORDER:
        if all(k in row for k in fmt.fields):
            return fmt.name
    # field names come from the user's file: escaped, so a reason stays one readable line. The fix comes
    # first, before any ';': the terminal's summary of reject reasons shows a reason's first clause.
    keys = ", ".join(sorted(escaped(k) for k in row)) or "none"
    hint = mapping_hint(row)
    marks = ["+".join(fmt.fields) for fmt in DETECTION_ORDER]
    fix = f"set `mapping: {hint}` on this source" if hint else "set the source's format or mapping"
    raise RowError(None, f"unknown format (fields: {keys}): {fix} in the config; formats: "
                         f"{', '.join(marks[:-1])} or {marks[-1]}")



def to_example(row: dict, fmt: str, system_prompt: str | None = None) -> Example:
    """Convert one raw row of a known format to a checked example."""
    to_chat = BY_NAME[fmt].to_chat if fmt in BY_NAME else None
    if to_chat is None:
        raise RowError(None, f"format {fmt!r} does not convert to chat messages")
    example = to_chat(row)
    if system_prompt and example.messages and example.messages[0].role != "system":
        example.messages.insert(0, Message("system", system_prompt))
    check_conversation(example.messages, example.tools)
    return example


def convert_example(row: Any, fmt: str, *, mapping: dict | None = None, system_prompt: str | None = None,
                    allow_text: bool = False) -> tuple[str, Example]:
    """Raw row → (detected format, typed example). The row's fields the format does not read are
    kept in `example.extra["meta"]`: written to the data folder with the record, never dropped."""
    if not isinstance(row, dict):
        raise RowError(None, f"row must be an object/record, got {type(row).__name__}")
    row = apply_mapping(row, mapping or {})
    if fmt == "auto":
        fmt = detect_format(row)
    if fmt == "text":
        if not allow_text:
            raise RowError("text", "plain-text rows are for continued pre-training; set data.allow_text: true")
        example = Example(text=text_field(row, "text"))
    else:
        example = to_example(row, fmt, system_prompt)
    spec = BY_NAME[fmt]
    read = {*spec.fields, *spec.reads, *READ_BY_SFTFLOW}
    meta = {k: v for k, v in row.items() if k not in read}
    if meta:
        example.extra["meta"] = meta
    return fmt, example


def convert_row(row: Any, fmt: str, *, mapping: dict | None = None, system_prompt: str | None = None,
                allow_text: bool = False) -> tuple[str, dict]:
    """Raw row → (detected format, the example as a canonical record dict)."""
    fmt, example = convert_example(row, fmt, mapping=mapping, system_prompt=system_prompt, allow_text=allow_text)
    return fmt, example.to_dict()
