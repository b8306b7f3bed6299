"""Each row format's conversion to a typed `Example` (the `to_chat` of its `Format` entry)."""

from __future__ import annotations

import json
from typing import Any

from sftflow.errors import RowError
from sftflow.example import ROLES, Example, Message, ToolCall
from sftflow.formats.messages import parse_arguments, parse_message, parse_messages, parse_tools, trained

SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
}


def text_field(row: dict, field: str, required: bool = True) -> str:
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


def from_alpaca(row: dict) -> Example:
    instruction = text_field(row, "instruction")
    extra_input = text_field(row, "input", required=False).strip()
    output = text_field(row, "output")
    system = text_field(row, "system", required=False).strip()
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


def from_sharegpt(row: dict) -> Example:
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
            messages.append(Message("assistant", "", calls, train=trained(turn, where)))
        elif kind in ("observation", "tool"):
            if not isinstance(turn.get("value"), str):
                raise RowError(f"{where}.value", f"must be a string, got {type(turn.get('value')).__name__}")
            if not waiting:
                raise RowError(f"{where}.from", "an observation with no function_call before it")
            messages.append(Message("tool", turn["value"], tool_call_id=waiting.pop(0)))
        else:
            messages.append(parse_message(turn, where, "from", "value", roles))
    return Example(messages, parse_tools(row.get("tools")))


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
        calls.append(ToolCall(f"call{n + k + 1:05d}", item["name"], parse_arguments(item.get("arguments", {}),
                                                                               f"{at}.arguments")))
    return tuple(calls)


def from_messages(row: dict) -> Example:
    return Example(parse_messages(row.get("messages"), "messages", "role", "content", {r: r for r in ROLES}),
                   parse_tools(row.get("tools")))


def from_prompt_completion(row: dict) -> Example:
    roles = {r: r for r in ROLES}
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list):  # TRL's conversational prompt/completion
        messages = parse_messages(prompt, "prompt", "role", "content", roles)
    else:
        messages = [Message("user", text_field(row, "prompt"))]
    if isinstance(completion, list):
        messages += parse_messages(completion, "completion", "role", "content", roles)
    else:
        messages.append(Message("assistant", text_field(row, "completion")))
    return Example(messages, parse_tools(row.get("tools")))
