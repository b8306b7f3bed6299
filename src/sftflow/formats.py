"""Detect a raw row's format and convert it to a typed example (`sftflow.example.Example`).

Every source format becomes an `Example`: its `Message`s (system, user, assistant with optional
`tool_calls`, tool results) and the `tools` it declares — or, for continued pre-training rows,
plain `text` — so that one chat template renders all of them. A row that cannot be converted
raises `RowError` naming the field and the reason; the caller writes it to rejects.jsonl. A field
no reader uses is carried (message fields in the message, row fields in the record's `meta`) or
refused by name: nothing is dropped silently.

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

import jsonschema

from sftflow.example import ROLES, Example, Message, Tool, ToolCall

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
    # field names come from the user's file: escaped, so a reason stays one readable line. The fix comes
    # first, before any ';': the terminal's summary of reject reasons shows a reason's first clause.
    keys = ", ".join(sorted(_escaped(k) for k in row)) or "none"
    hint = mapping_hint(row)
    marks = ["+".join(fmt.fields) for fmt in DETECTION_ORDER]
    fix = f"set `mapping: {hint}` on this source" if hint else "set the source's format or mapping"
    raise RowError(None, f"unknown format (fields: {keys}): {fix} in the config; formats: "
                         f"{', '.join(marks[:-1])} or {marks[-1]}")


def _escaped(key) -> str:
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
    return "{" + ", ".join(f"{k}: {_escaped(v)}" for k, v in mapping.items()) + "}"


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


# ---- message fields -------------------------------------------------------------------------------

_REASONING_KEYS = ("reasoning", "reasoning_content", "thinking")  # vLLM, DeepSeek, gpt-oss names for one thing
_MESSAGE_KEYS = {"role", "content", "tool_calls", "tool_call_id", "name", "weight", "train", *_REASONING_KEYS}
_NON_TEXT_PARTS = {"image_url": "image", "image": "image", "input_image": "image", "input_audio": "audio",
                   "audio": "audio", "audio_url": "audio", "file": "file", "video_url": "video", "video": "video"}


def _content(value: Any, where: str, role: str, has_calls: bool) -> str:
    """A message's content as text: a string, or OpenAI's list of parts (text parts joined by a newline,
    as vLLM joins them). Media parts are refused by name: sftflow trains text-only models."""
    if value is None:
        if role == "assistant" and has_calls:  # a turn that only calls tools has no content
            return ""
        raise RowError(where, "must be a string, got missing")
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and role == "tool":  # a tool result given as an object: its JSON
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(value, list):
        raise RowError(where, f"must be a string, got {type(value).__name__}")
    texts = []
    for k, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in _NON_TEXT_PARTS:
            raise RowError(f"{where}[{k}]", f"{_NON_TEXT_PARTS[kind]} part ({kind}) — sftflow trains text-only "
                                            "models; drop the part or describe it in text")
        else:
            raise RowError(f"{where}[{k}]", "must be a {\"type\": \"text\", \"text\": ...} part, got "
                                            + (repr(kind) if kind is not None else type(part).__name__))
    return "\n".join(texts)


def _arguments(value: Any, where: str) -> str:
    """A call's arguments as JSON text (OpenAI sends a string; many datasets an object)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as err:
            raise RowError(where, f"not JSON ({err})") from None
        return value
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    raise RowError(where, f"must be a JSON object, got {type(value).__name__}")


def _tool_calls(value: Any, where: str) -> tuple[ToolCall, ...]:
    if not isinstance(value, list):
        raise RowError(where, f"must be a list of calls, got {type(value).__name__}")
    calls = []
    for k, call in enumerate(value):
        at = f"{where}[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise RowError(f"{at}.function", "must be an object {name, arguments}")
        if not isinstance(call.get("id"), str) or not call["id"]:
            raise RowError(f"{at}.id", "missing (a call needs an id that its tool result names)")
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise RowError(f"{at}.function.name", "missing")
        calls.append(ToolCall(call["id"], fn["name"], _arguments(fn.get("arguments", "{}"), f"{at}.function.arguments")))
    return tuple(calls)


def _trained(msg: dict, where: str) -> bool:
    """False for a turn the source marks as context only: `weight: 0` (ShareGPT/Axolotl) or `train: false`."""
    weight = msg.get("weight", 1)
    if weight not in (0, 1) or isinstance(weight, bool):
        raise RowError(f"{where}.weight", f"must be 0 or 1, got {weight!r}")
    train = msg.get("train", True)
    if not isinstance(train, bool):
        raise RowError(f"{where}.train", f"must be true or false, got {train!r}")
    return bool(weight) and train


def _message(msg: Any, where: str, role_key: str, content_key: str, roles: dict[str, str]) -> Message:
    if not isinstance(msg, dict):
        raise RowError(where, f"must be an object, got {type(msg).__name__}")
    role = msg.get(role_key)
    if not isinstance(role, str) or role not in roles:  # a list or object as role is unhashable
        allowed = ", ".join(sorted(roles))
        raise RowError(f"{where}.{role_key}", f"unknown role {role!r} (allowed: {allowed})")
    role = roles[role]
    if msg.get("function_call") is not None and role_key == "role":  # carried, it would train nothing: refused
        raise RowError(f"{where}.function_call", "OpenAI's legacy function_call is not read; write the call as "
                                                 "tool_calls [{id, type: function, function: {name, arguments}}]")
    calls = _tool_calls(msg["tool_calls"], f"{where}.tool_calls") if msg.get("tool_calls") is not None else ()
    if calls and role != "assistant":
        raise RowError(f"{where}.tool_calls", f"only an assistant turn calls tools, not {role}")
    content = _content(msg.get(content_key), f"{where}.{content_key}", role, bool(calls))
    reasoning = next((msg[k] for k in _REASONING_KEYS if msg.get(k) is not None), None)
    if reasoning is not None and not isinstance(reasoning, str):
        raise RowError(f"{where}.reasoning", f"must be a string, got {type(reasoning).__name__}")
    call_id = msg.get("tool_call_id")
    if role == "tool" and not (isinstance(call_id, str) and call_id):
        raise RowError(f"{where}.tool_call_id", "missing (a tool result names the call it answers)")
    name = msg.get("name") if isinstance(msg.get("name"), str) else None
    known = _MESSAGE_KEYS | {role_key, content_key}
    extra = {k: v for k, v in msg.items() if k not in known}  # carried to the data folder, never dropped
    return Message(role, content, calls, call_id if role == "tool" else None, name, reasoning,
                   _trained(msg, where), extra)


def _message_list(value: Any, field: str, role_key: str, content_key: str, roles: dict[str, str]) -> list[Message]:
    if not isinstance(value, list):
        raise RowError(field, f"must be a list of messages, got {type(value).__name__}")
    return [_message(msg, f"{field}[{i}]", role_key, content_key, roles) for i, msg in enumerate(value)]


# ---- tools ----------------------------------------------------------------------------------------

def _tools(value: Any, field: str = "tools") -> list[Tool]:
    """OpenAI tool definitions ({type: function, function: {name, description, parameters}}), bare
    functions ({name, description, parameters}), or either as a JSON string (ShareGPT's tools column)."""
    if value is None:
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except ValueError as err:
            raise RowError(field, f"not JSON ({err})") from None
    if not isinstance(value, list):
        raise RowError(field, f"must be a list of tool definitions, got {type(value).__name__}")
    tools = []
    for k, d in enumerate(value):
        at = f"{field}[{k}]"
        if not isinstance(d, dict):
            raise RowError(at, f"must be an object, got {type(d).__name__}")
        if "function" in d:
            if d.get("type", "function") != "function":
                raise RowError(f"{at}.type", f"only function tools are supported, got {d.get('type')!r}")
            fn, at = d["function"], f"{at}.function"
            if not isinstance(fn, dict):
                raise RowError(at, f"must be an object, got {type(fn).__name__}")
        else:
            fn = d
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise RowError(f"{at}.name", "missing")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise RowError(f"{at}.parameters", f"must be a JSON schema object, got {type(params).__name__}")
        try:
            jsonschema.Draft202012Validator.check_schema(params)
        except jsonschema.SchemaError as err:
            raise RowError(f"{at}.parameters", f"not a valid JSON schema: {err.message}") from None
        description = fn.get("description") if isinstance(fn.get("description"), str) else ""
        tools.append(Tool(fn["name"], description, params))
    names = [t.name for t in tools]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise RowError(field, f"tool {dup!r} is declared twice")
    return tools


# ---- the conversation check ---------------------------------------------------------------------

def check_conversation(messages: list[Message], tools: list[Tool] = (), field: str = "messages") -> list[Message]:
    """A trainable chat: optional system first; user, then assistant; an assistant turn that calls tools
    is followed by one result per call (named by its id) and then another assistant turn, unless the
    conversation ends on the call. Every call names a declared tool, with arguments that validate
    against its schema. It ends with an assistant turn, and at least one assistant turn is trained."""
    if not messages:
        raise RowError(field, "empty conversation")
    by_name = {t.name: t for t in tools}
    first = 1 if messages[0].role == "system" else 0
    pending: dict[str, str] = {}  # call id → tool name, calls of the last assistant turn not answered yet
    expected = "user"
    for i, msg in enumerate(messages):
        where = f"{field}[{i}]"
        if not msg.content.strip() and not msg.tool_calls:
            raise RowError(f"{where}.content", f"empty {msg.role} message")
        if i < first:
            continue
        if msg.role == "tool":
            if msg.tool_call_id not in pending:
                raise RowError(f"{where}.tool_call_id", f"{msg.tool_call_id!r} answers no call of the assistant turn "
                                                        "before it")
            del pending[msg.tool_call_id]
            expected = "tool" if pending else "assistant"
            continue
        if pending:
            ids = ", ".join(repr(c) for c in pending)
            raise RowError(f"{where}.role", f"expected the tool result of call {ids}, got {msg.role} (each call is "
                                            "answered by a tool message with its tool_call_id, or the conversation "
                                            "ends on the call)")
        if msg.role != expected:
            raise RowError(f"{where}.role", f"expected {expected}, got {msg.role} "
                                            "(system first, then user/assistant alternating)")
        if msg.role == "assistant":
            for k, call in enumerate(msg.tool_calls):
                _check_call(call, by_name, f"{where}.tool_calls[{k}]")
                if call.id in pending:
                    raise RowError(f"{where}.tool_calls[{k}].id", f"{call.id!r} is used twice in one turn")
                pending[call.id] = call.name
            expected = "tool" if msg.tool_calls else "user"
        else:
            expected = "assistant"
    turns = messages[first:]
    if not turns or turns[-1].role != "assistant":
        raise RowError(field, "no assistant reply to learn from (the conversation must end with assistant)")
    if not any(m.train for m in turns if m.role == "assistant"):
        raise RowError(field, "no assistant reply to learn from (every assistant turn has weight 0)")
    return messages


def _check_call(call: ToolCall, tools: dict[str, Tool], where: str) -> None:
    if not tools:
        raise RowError(f"{where}.function.name", f"calls {call.name!r}, but the row declares no tools")
    if call.name not in tools:
        raise RowError(f"{where}.function.name", f"calls {call.name!r}, which the row's tools do not declare "
                                                 f"(declared: {', '.join(sorted(tools))})")
    args = json.loads(call.arguments)
    errors = sorted(jsonschema.Draft202012Validator(tools[call.name].parameters).iter_errors(args),
                    key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        raise RowError(f"{where}.function.arguments{path}",
                       f"does not match {call.name!r}'s parameters: {err.message}")


# ---- the formats ------------------------------------------------------------------------------------

def _alpaca(row: dict) -> Example:
    instruction = _text(row, "instruction")
    extra_input = _text(row, "input", required=False).strip()
    output = _text(row, "output")
    system = _text(row, "system", required=False).strip()
    # instruction, a blank line, then the input: one user turn, as Alpaca's own prompt writes it. The
    # instruction is never a system prompt: that comes only from a `system` field or the config.
    user = f"{instruction}\n\n{extra_input}" if extra_input else instruction
    messages = [Message("system", system)] if system else []
    messages += _history(row.get("history"))
    messages += [Message("user", user), Message("assistant", output)]
    return Example(messages)


def _history(value: Any) -> list[Message]:
    """Alpaca's `history`: earlier [instruction, response] pairs, oldest first (LLaMA-Factory, Alpaca-CoT)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RowError("history", f"must be a list of [user, assistant] pairs, got {type(value).__name__}")
    out = []
    for k, pair in enumerate(value):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise RowError(f"history[{k}]", "must be a [user, assistant] pair of strings")
        out += [Message("user", pair[0]), Message("assistant", pair[1])]
    return out


def _sharegpt(row: dict) -> Example:
    """ShareGPT `conversations`, with LLaMA-Factory's tool turns: `function_call` (the assistant's call,
    its value JSON {name, arguments} or a list of them) and `observation` (the tool's result), and the
    tools in a `tools` column. Calls get ids call00001, … (nine characters: Mistral's templates need
    that) and each observation answers the oldest call not yet answered."""
    value = row.get("conversations")
    if not isinstance(value, list):
        raise RowError("conversations", f"must be a list of messages, got {type(value).__name__}")
    roles = {**SHAREGPT_ROLES, "function_call": "assistant", "observation": "tool", "tool": "tool"}
    messages, waiting, n = [], [], 0
    for i, turn in enumerate(value):
        where = f"conversations[{i}]"
        kind = turn.get("from") if isinstance(turn, dict) else None
        if kind == "function_call":
            calls = _sharegpt_calls(turn.get("value"), f"{where}.value", n)
            n += len(calls)
            waiting += [c.id for c in calls]
            messages.append(Message("assistant", "", calls, train=_trained(turn, where)))
        elif kind in ("observation", "tool"):
            if not isinstance(turn.get("value"), str):
                raise RowError(f"{where}.value", f"must be a string, got {type(turn.get('value')).__name__}")
            if not waiting:
                raise RowError(f"{where}.from", "an observation with no function_call before it")
            messages.append(Message("tool", turn["value"], tool_call_id=waiting.pop(0)))
        else:
            messages.append(_message(turn, where, "from", "value", roles))
    return Example(messages, _tools(row.get("tools")))


def _sharegpt_calls(value: Any, where: str, n: int) -> tuple[ToolCall, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise RowError(where, f"a function_call must be JSON {{name, arguments}} ({err})") from None
    items = value if isinstance(value, list) else [value]
    calls = []
    for k, item in enumerate(items):
        at = f"{where}[{k}]" if isinstance(value, list) else where
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RowError(at, "a function_call must be JSON {name, arguments}")
        calls.append(ToolCall(f"call{n + k + 1:05d}", item["name"], _arguments(item.get("arguments", {}),
                                                                               f"{at}.arguments")))
    return tuple(calls)


def _messages(row: dict) -> Example:
    return Example(_message_list(row.get("messages"), "messages", "role", "content", {r: r for r in ROLES}),
                   _tools(row.get("tools")))


def _prompt_completion(row: dict) -> Example:
    roles = {r: r for r in ROLES}
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list):  # TRL's conversational prompt/completion
        messages = _message_list(prompt, "prompt", "role", "content", roles)
    else:
        messages = [Message("user", _text(row, "prompt"))]
    if isinstance(completion, list):
        messages += _message_list(completion, "completion", "role", "content", roles)
    else:
        messages.append(Message("assistant", _text(row, "completion")))
    return Example(messages, _tools(row.get("tools")))


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
    Format("alpaca", ("instruction", "output"), 2, _alpaca, ("input", "system", "history")),
    Format("sharegpt", ("conversations",), 1, _sharegpt, ("tools",)),
    Format("messages", ("messages",), 0, _messages, ("tools",)),
    Format("prompt_completion", ("prompt", "completion"), 3, _prompt_completion, ("tools",)),
    Format("text", ("text",), 4, None),
)
FORMAT_NAMES = tuple(f.name for f in FORMATS)
BY_NAME = {f.name: f for f in FORMATS}
DETECTION_ORDER = sorted(FORMATS, key=lambda f: f.rank)
READ_BY_SFTFLOW = ("origin", "synthetic")  # rows.py reads these on every format
# What a source's `mapping` may rename a column to: every field some format reads.
MAPPABLE_FIELDS = tuple(sorted({f for fmt in FORMATS for f in (*fmt.fields, *fmt.reads)} | set(READ_BY_SFTFLOW)))


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
        example = Example(text=_text(row, "text"))
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
