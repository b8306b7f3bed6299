"""Renaming a row's fields (a source's `mapping:`), and guessing the mapping a row of unknown format needs."""

from __future__ import annotations

import json


def apply_mapping(row: dict, mapping: dict[str, str]) -> dict:
    """Rename user fields to canonical ones: mapping is {canonical: source}."""
    if not mapping:
        return row
    row = dict(row)
    for canonical, source in mapping.items():
        if source in row:
            row[canonical] = row.pop(source)
    return row


def escaped(key) -> str:
    return json.dumps(str(key), ensure_ascii=False)[1:-1]


_INPUT_NAMES = ("prompt", "question", "query", "input", "instruction", "message", "request", "user", "text", "source")
_OUTPUT_NAMES = ("completion", "answer", "response", "output", "label", "target", "reply", "assistant", "json")


def guess_mapping(row: dict) -> dict[str, str] | None:
    """The mapping that would read this row as prompt+completion: the fields whose names look like an
    input and an output, else the first two text fields in the row's order (None: fewer than two)."""
    texts = [k for k, v in row.items() if isinstance(v, str)]
    if len(texts) < 2:
        return None

    def named(names, taken=None):
        return next((k for n in names for k in texts if n in str(k).lower() and k != taken), None)

    prompt = named(_INPUT_NAMES) or texts[0]
    completion = named(_OUTPUT_NAMES, prompt) or next(k for k in texts if k != prompt)
    return {"prompt": str(prompt), "completion": str(completion)}


def mapping_hint(row: dict) -> str | None:
    """`guess_mapping` as the config line it would be."""
    mapping = guess_mapping(row)
    if mapping is None:
        return None
    return "{" + ", ".join(f"{k}: {escaped(v)}" for k, v in mapping.items()) + "}"

