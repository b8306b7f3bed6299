"""Detect a raw row's format and convert it to canonical chat messages.

Every source format becomes `[{"role": "system|user|assistant", "content": str}, ...]`
(or, for continued pre-training rows, plain `text`) so that one chat template renders all
of them. A row that cannot be converted raises `RowError` naming the field and the reason;
the caller writes it to rejects.jsonl — nothing is dropped silently.

`FORMATS` below is the one list of formats: the config's `format` choices (config.py) and
auto-detection read it, so adding a format is one entry there. It lives outside the data
package because config.py reads it and the data package imports config.py (no import loops:
tests/test_architecture.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
}


class RowError(ValueError):
    """A raw row that cannot become a training example."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


def apply_mapping(row: dict, mapping: dict[str, str]) -> dict:
    """Rename user fields to canonical ones: mapping is {canonical: source}."""
    if not mapping:
        return row
    row = dict(row)
    for canonical, source in mapping.items():
        if source in row:
            row[canonical] = row.pop(source)
    return row


def detect_format(row: dict) -> str:
    """The first format, by detection rank, whose marking fields the row has."""
    for fmt in DETECTION_ORDER:
        if all(k in row for k in fmt.fields):
            return fmt.name
    # field names come from the user's file: escaped, so a reason stays one readable line
    keys = ", ".join(sorted(_escaped(k) for k in row)) or "none"
    hint = mapping_hint(row)
    marks = ["+".join(fmt.fields) for fmt in DETECTION_ORDER]
    raise RowError(
        None,
        f"unknown format (fields: {keys}); expected {', '.join(marks[:-1])} or {marks[-1]} "
        "— set the source's format/mapping in the config"
        + (f", e.g. `mapping: {hint}`" if hint else ""),
    )


def _escaped(key) -> str:
    return json.dumps(str(key), ensure_ascii=False)[1:-1]


_INPUT_NAMES = ("prompt", "question", "query", "input", "instruction", "message", "request", "user", "text", "source")
_OUTPUT_NAMES = ("completion", "answer", "response", "output", "label", "target", "reply", "assistant", "json")


def mapping_hint(row: dict) -> str | None:
    """The config line that would read this row as prompt+completion: the fields whose names look
    like an input and an output, else the first two text fields in the row's order."""
    texts = [k for k, v in row.items() if isinstance(v, str)]
    if len(texts) < 2:
        return None

    def named(names, taken=None):
        return next((k for n in names for k in texts if n in str(k).lower() and k != taken), None)

    prompt = named(_INPUT_NAMES) or texts[0]
    completion = named(_OUTPUT_NAMES, prompt) or next(k for k in texts if k != prompt)
    return f"{{prompt: {_escaped(prompt)}, completion: {_escaped(completion)}}}"


def _text(row: dict, field: str, required: bool = True) -> str:
    value = row.get(field)
    if value is None:
        if required:
            raise RowError(field, "missing")
        return ""
    if not isinstance(value, str):
        raise RowError(field, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise RowError(field, "empty")
    return value


def _message_list(value: Any, field: str, role_key: str, content_key: str, roles: dict[str, str]) -> list[dict]:
    if not isinstance(value, list):
        raise RowError(field, f"must be a list of messages, got {type(value).__name__}")
    out = []
    for i, msg in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(msg, dict):
            raise RowError(where, f"must be an object, got {type(msg).__name__}")
        role = msg.get(role_key)
        if not isinstance(role, str) or role not in roles:  # a list or object as role is unhashable
            allowed = ", ".join(sorted(roles))
            raise RowError(f"{where}.{role_key}", f"unknown role {role!r} (allowed: {allowed})")
        content = msg.get(content_key)
        if not isinstance(content, str):
            got = "missing" if content is None else type(content).__name__
            raise RowError(f"{where}.{content_key}", f"must be a string, got {got}")
        out.append({"role": roles[role], "content": content})
    return out


def check_conversation(messages: list[dict]) -> list[dict]:
    """A trainable chat: optional system first, then user/assistant alternating, ending with assistant."""
    if not messages:
        raise RowError("messages", "empty conversation")
    for i, msg in enumerate(messages):
        if not msg["content"].strip():
            raise RowError(f"messages[{i}].content", f"empty {msg['role']} message")
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    for i, msg in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if msg["role"] != expected:
            pos = i + (len(messages) - len(turns))
            raise RowError(
                f"messages[{pos}].role",
                f"expected {expected}, got {msg['role']} (system first, then user/assistant alternating)",
            )
    if not turns or turns[-1]["role"] != "assistant":
        raise RowError("messages", "no assistant reply to learn from (the conversation must end with assistant)")
    return messages


def _alpaca(row: dict) -> list[dict]:
    instruction = _text(row, "instruction")
    extra_input = _text(row, "input", required=False).strip()
    output = _text(row, "output")
    system = _text(row, "system", required=False).strip()
    if extra_input and not system:
        # An Alpaca instruction with an input is the task description: the role a system
        # prompt plays in chat data. Mapping it there renders Alpaca and chat rows of the
        # same task identically (one prompt format, and cross-format duplicates are found).
        messages = [{"role": "system", "content": instruction}, {"role": "user", "content": extra_input}]
    else:
        user = f"{instruction}\n\n{extra_input}" if extra_input else instruction
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    messages.append({"role": "assistant", "content": output})
    return messages


def _sharegpt(row: dict) -> list[dict]:
    return _message_list(row.get("conversations"), "conversations", "from", "value", SHAREGPT_ROLES)


def _messages(row: dict) -> list[dict]:
    return _message_list(row.get("messages"), "messages", "role", "content", {r: r for r in ROLES})


def _prompt_completion(row: dict) -> list[dict]:
    roles = {r: r for r in ROLES}
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list):  # TRL's conversational prompt/completion
        messages = _message_list(prompt, "prompt", "role", "content", roles)
    else:
        messages = [{"role": "user", "content": _text(row, "prompt")}]
    if isinstance(completion, list):
        messages += _message_list(completion, "completion", "role", "content", roles)
    else:
        messages.append({"role": "assistant", "content": _text(row, "completion")})
    return messages


@dataclass(frozen=True)
class Format:
    """A row format: the fields that mark it, where auto-detection tries it, how it becomes chat."""

    name: str
    fields: tuple[str, ...]  # a row with all of them is of this format (format: auto)
    rank: int  # auto-detection tries formats by rank, lowest first: `messages` wins over `instruction`
    to_chat: Callable[[dict], list[dict]] | None  # None: plain text for continued pre-training


# Every format sftflow reads, in the order the config lists them: adding a format = one entry.
FORMATS = (
    Format("alpaca", ("instruction", "output"), 2, _alpaca),
    Format("sharegpt", ("conversations",), 1, _sharegpt),
    Format("messages", ("messages",), 0, _messages),
    Format("prompt_completion", ("prompt", "completion"), 3, _prompt_completion),
    Format("text", ("text",), 4, None),
)
FORMAT_NAMES = tuple(f.name for f in FORMATS)
BY_NAME = {f.name: f for f in FORMATS}
DETECTION_ORDER = sorted(FORMATS, key=lambda f: f.rank)


def to_messages(row: dict, fmt: str, system_prompt: str | None = None) -> list[dict]:
    """Convert one raw row of a known format to checked chat messages."""
    to_chat = BY_NAME[fmt].to_chat if fmt in BY_NAME else None
    if to_chat is None:
        raise RowError(None, f"format {fmt!r} does not convert to chat messages")
    messages = to_chat(row)
    if system_prompt and messages and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return check_conversation(messages)


def convert_row(row: Any, fmt: str, *, mapping: dict | None = None, system_prompt: str | None = None,
                allow_text: bool = False) -> tuple[str, dict]:
    """Raw row → (detected format, {"messages": [...]} or {"text": ...})."""
    if not isinstance(row, dict):
        raise RowError(None, f"row must be an object/record, got {type(row).__name__}")
    row = apply_mapping(row, mapping or {})
    if fmt == "auto":
        fmt = detect_format(row)
    if fmt == "text":
        if not allow_text:
            raise RowError("text", "plain-text rows are for continued pre-training; set data.allow_text: true")
        return fmt, {"text": _text(row, "text")}
    return fmt, {"messages": to_messages(row, fmt, system_prompt)}
