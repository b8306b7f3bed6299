"""A pydantic validation error as one readable line: every problem with its key path, unknown keys
with a "did you mean" hint."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError


def _key_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names at the config location of an unknown key, for 'did you mean'."""
    cls: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        cand = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not cand:
            return []
        cls = cand[0]
    return list(cls.model_fields)


def _unknown_keys(errors: list[dict], schema: type[BaseModel]) -> dict[tuple, str]:
    """One problem per section with unknown keys (Axolotl's or TRL's names, say): each key with its
    "did you mean", and the section's allowed keys listed once, where none of them is a near miss."""
    by_section: dict[tuple, list[tuple]] = {}
    for e in errors:
        if e["type"] == "extra_forbidden":
            by_section.setdefault(e["loc"][:-1], []).append(e["loc"])
    problems = {}
    for section, locs in by_section.items():
        known = _known_keys(schema, locs[0])
        named, unmatched = [], []
        for loc in locs:
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
            named.append(f"'{_key_path(loc)}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
            unmatched += [] if hint else [loc]
        allowed = f"; allowed {'in ' + _key_path(section) if section else 'at the top level'}: {', '.join(known)}"
        problems[section] = (f"unknown key{'s' if len(named) > 1 else ''} {', '.join(named)}"
                             + (allowed if unmatched and known else ""))
    return problems


def format_validation_error(err: ValidationError, source: str, schema: type[BaseModel]) -> str:
    """All problems of a config in one readable message, each with its key path (`schema`: the model
    validated, whose field names the "did you mean" hints come from)."""
    problems = []
    unknown = _unknown_keys(err.errors(), schema)
    for e in err.errors():
        loc = e["loc"]
        key = _key_path(loc)
        if e["type"] == "extra_forbidden":
            msg = unknown.pop(loc[:-1], None)
            if msg is None:  # its section's keys are already said
                continue
        elif e["type"] == "missing":
            msg = f"missing required key '{key}'"
        else:
            text = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            secret = loc and loc[-1] in ("api_key_env", "base_url")  # may hold a key by mistake: never echo it
            msg = f"'{key}': {text}" + ("" if secret or isinstance(got, dict | list) else f" (got {got!r})")
        problems.append(msg)
    return f"{source}: " + "; ".join(problems)

