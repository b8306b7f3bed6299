"""Hallucination checks: content in an output that neither the prompt nor the reference holds.

A fine-tuned model that learnt the *shape* of the answers can fill it with invented details.
For each output we flag:
- numbers that appear in neither the prompt nor the reference;
- named entities (capitalised words inside a sentence) absent from both;
- for JSON answers: keys the task never uses, values outside a field's allowed set (from the
  JSON schema's `enum`, or inferred from the references when a field takes few values), and
  free-text string values found in neither prompt nor reference.
The rate is the share of outputs with at least one flag.

A wrong but allowed value ("phone" for "laptop", "low" for "high") is an error, not an
invention: `wrong_values` counts it separately (and the task metrics count it), so a report
never shows "no hallucinations" as if it meant "no mistakes".
"""

from __future__ import annotations

import json
import re
from collections import Counter

_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")
_CAPITALISED = re.compile(r"\b[A-Z][a-z]{2,}(?:\s+[A-Z][a-z]{2,})*\b")
_SENTENCE_START = re.compile(r"(^|[.!?:;\n\"'(\[{]\s*)$")
# Capitalised words that are not entities even inside a sentence.
_NOT_ENTITIES = {
    "i", "i'm", "hello", "hi", "hey", "thanks", "thank", "please", "sorry", "yes", "no", "okay", "ok",
    "dear", "good", "the", "a", "an", "mr", "mrs", "ms", "dr",
}
MAX_ENUM_VALUES = 30  # a field with more distinct string values than this is free text, not an enum


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def _entities(text: str) -> list[str]:
    """Capitalised word runs that do not open a sentence: names, places, products."""
    found = []
    for m in _CAPITALISED.finditer(text):
        if _SENTENCE_START.search(text[: m.start()]):
            continue
        if m.group(0).lower() in _NOT_ENTITIES:
            continue
        found.append(m.group(0))
    return found


def _parse_object(text: str) -> dict | None:
    try:
        value = json.loads(text.strip())
    except (json.JSONDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def json_task_vocabulary(references: list[str], schema: dict | None = None) -> tuple[set[str], dict[str, set]]:
    """Keys the task uses and, per key, the allowed values when they form a small set.

    From the schema (`properties`, `enum`) when there is one; otherwise from the reference
    answers of every split: a string field with at most MAX_ENUM_VALUES distinct values that
    repeat (fewer values than a third of the answers) is treated as an enum."""
    keys: set[str] = set()
    enums: dict[str, set] = {}
    if schema and isinstance(schema.get("properties"), dict):
        keys = set(schema["properties"])
        enums = {k: set(p["enum"]) for k, p in schema["properties"].items() if isinstance(p, dict) and "enum" in p}
        if schema.get("additionalProperties") is not False:
            keys |= _reference_keys(references)
        return keys, enums
    values: dict[str, list] = {}
    for ref in references:
        obj = _parse_object(ref)
        if obj is None:
            continue
        for k, v in obj.items():
            keys.add(k)
            values.setdefault(k, []).append(v)
    for k, vs in values.items():
        distinct = {v for v in vs if isinstance(v, str)}
        if len(distinct) == len(vs) and len(vs) > 1:
            continue  # every value different: free text (names, descriptions)
        if all(isinstance(v, str) for v in vs) and len(distinct) <= min(MAX_ENUM_VALUES, max(2, len(vs) // 3)):
            enums[k] = distinct
    return keys, enums


def _reference_keys(references: list[str]) -> set[str]:
    keys: set[str] = set()
    for ref in references:
        obj = _parse_object(ref)
        keys |= set(obj or {})
    return keys


def _in_source(value: str, source: str) -> bool:
    return value.lower() in source.lower()


def hallucination_flags(output: str, prompt: str, reference: str, *, json_keys: set[str] | None = None,
                        enums: dict[str, set] | None = None) -> list[dict]:
    """Everything in `output` that the prompt and the reference do not support; each flag has a
    kind (number, entity, key, enum, value) and the offending text."""
    source = f"{prompt}\n{reference}"
    flags: list[dict] = []
    obj = _parse_object(output) if json_keys else None
    if obj is not None:
        for key, value in obj.items():
            if key not in json_keys:
                flags.append({"kind": "key", "text": key, "detail": "key the task never uses"})
                continue
            if enums and key in enums:
                if value not in enums[key]:
                    flags.append({"kind": "enum", "text": f"{key}={value!r}",
                                  "detail": f"not one of {sorted(map(str, enums[key]))}"})
                continue
            if isinstance(value, str) and value.strip() and not _in_source(value.strip(), source):
                flags.append({"kind": "value", "text": f"{key}={value!r}", "detail": "in neither prompt nor reference"})
            elif isinstance(value, int | float) and not isinstance(value, bool) and not (_numbers(str(value)) <= _numbers(source)):
                flags.append({"kind": "number", "text": f"{key}={value}", "detail": "in neither prompt nor reference"})
        return flags
    known_numbers = _numbers(source)
    for n in sorted(_numbers(output) - known_numbers):
        flags.append({"kind": "number", "text": n, "detail": "in neither prompt nor reference"})
    seen = set()
    for ent in _entities(output):
        if ent.lower() in seen or _in_source(ent, source):
            continue
        seen.add(ent.lower())
        flags.append({"kind": "entity", "text": ent, "detail": "in neither prompt nor reference"})
    return flags


def wrong_values(output: str, reference: str, enums: dict[str, set]) -> list[dict]:
    """JSON fields holding one of the field's allowed values, but not the reference's: errors
    of choice, which `hallucination_flags` does not flag (the value itself is legitimate)."""
    ref, out = _parse_object(reference), _parse_object(output)
    if ref is None or out is None:
        return []
    return [{"field": k, "value": v, "expected": ref[k]} for k, v in out.items()
            if k in enums and k in ref and isinstance(v, str) and v in enums[k] and v != ref[k]]


def wrong_value_summary(rows: list[list[dict]]) -> dict:
    """Outputs with at least one wrong allowed value, and wrong values per field."""
    by_field = Counter(w["field"] for row in rows for w in row)
    return {"outputs": sum(bool(r) for r in rows), "n": len(rows), "by_field": dict(by_field.most_common())}


def prompt_text(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages)
