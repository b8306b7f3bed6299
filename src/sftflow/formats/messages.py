"""One message of a row (role, content, tool calls, reasoning, trained or not) and the tools a row
declares, read into the typed `Message` and `Tool`; anything unreadable is a `RowError` naming the field."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from sftflow.errors import RowError
from sftflow.example import Message, Tool, ToolCall

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


def parse_arguments(value: Any, where: str) -> str:
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
        calls.append(ToolCall(call["id"], fn["name"], parse_arguments(fn.get("arguments", "{}"), f"{at}.function.arguments")))
    return tuple(calls)


def trained(msg: dict, where: str) -> bool:
    """False for a turn the source marks as context only: `weight: 0` (ShareGPT/Axolotl) or `train: false`."""
    weight = msg.get("weight", 1)
    if weight not in (0, 1) or isinstance(weight, bool):
        raise RowError(f"{where}.weight", f"must be 0 or 1, got {weight!r}")
    train = msg.get("train", True)
    if not isinstance(train, bool):
        raise RowError(f"{where}.train", f"must be true or false, got {train!r}")
    return bool(weight) and train


def parse_message(msg: Any, where: str, role_key: str, content_key: str, roles: dict[str, str]) -> Message:
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
                   trained(msg, where), extra)


def parse_messages(value: Any, field: str, role_key: str, content_key: str, roles: dict[str, str]) -> list[Message]:
    if not isinstance(value, list):
        raise RowError(field, f"must be a list of messages, got {type(value).__name__}")
    return [parse_message(msg, f"{field}[{i}]", role_key, content_key, roles) for i, msg in enumerate(value)]


# ---- tools ----------------------------------------------------------------------------------------

def parse_tools(value: Any, field: str = "tools") -> list[Tool]:
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

