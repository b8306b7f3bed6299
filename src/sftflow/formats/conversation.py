"""The check every chat passes before it is trained on: the order of its turns, its tool calls against
the declared tools, and at least one trained assistant reply."""

from __future__ import annotations

import json

import jsonschema

from sftflow.errors import RowError
from sftflow.example import Message, Tool, ToolCall


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
