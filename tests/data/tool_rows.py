"""A realistic tool-calling file in OpenAI chat format (issue 28's 120 rows), with the fate of each row
written down by the generator itself, independently of sftflow's parser.

Kinds of row, in a fixed rotation: a plain answer with tools declared, a call-only turn, a call with
text next to it, two parallel calls, two steps (call, result, call, result), a conversation that ends on
the call, content as a list of parts, a context turn with `weight: 0` — all kept — and the faults a real
export holds: a call to a tool the row does not declare, arguments that are not JSON, arguments that do
not match the tool's schema, a call nobody answers before the user speaks again, an image part.
"""

from __future__ import annotations

import json
import random

CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Quito", "Hanoi", "Perth", "Dakar", "Riga", "Baku", "Lagos", "Turin",
          "Osaka", "Porto", "Minsk", "Delhi", "Accra", "Sofia", "Tunis", "Bern"]
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                        "unit": {"type": "string", "enum": ["C", "F"]}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
]
SYSTEM = "You are a travel assistant. Use the tools when you need live data."

# (kind, kept?, field, reason): the fate of a row of each kind, written out by hand
KINDS = [
    ("text_only", True, None, None),
    ("call_only", True, None, None),
    ("text_and_call", True, None, None),
    ("parallel", True, None, None),
    ("two_steps", True, None, None),
    ("ends_on_call", True, None, None),
    ("parts", True, None, None),
    ("weight_zero", True, None, None),
    ("undeclared_tool", False, "messages[2].tool_calls[0].function.name",
     "calls 'book_flight', which the row's tools do not declare (declared: get_time, get_weather)"),
    ("bad_json", False, "messages[2].tool_calls[0].function.arguments",
     "not JSON (Expecting ',' delimiter: line 1 column 17 (char 16))"),
    ("schema_mismatch", False, "messages[2].tool_calls[0].function.arguments.unit",
     "does not match 'get_weather''s parameters: 'K' is not one of ['C', 'F']"),
    ("unanswered", False, "messages[3].role",
     "expected the tool result of call 'call_{i}a', got user (each call is answered by a tool message with its "
     "tool_call_id, or the conversation ends on the call)"),
    ("image", False, "messages[1].content[1]",
     "image part (image_url) — sftflow trains text-only models; drop the part or describe it in text"),
]


def _call(cid: str, name: str, args) -> dict:
    return {"id": cid, "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}


def _tool(cid: str, result: dict) -> dict:
    return {"role": "tool", "tool_call_id": cid, "content": json.dumps(result)}


def row(kind: str, i: int, rnd: random.Random) -> dict:
    city, other = rnd.sample(CITIES, 2)
    temp, hour = rnd.randint(-5, 35), rnd.randint(0, 23)
    ask = {"role": "user", "content": f"Request {i}: what is the weather like in {city} right now?"}
    weather = _call(f"call_{i}a", "get_weather", {"city": city})
    answer = {"role": "assistant", "content": f"It is {temp} degrees in {city} (request {i})."}
    head = [{"role": "system", "content": SYSTEM}, ask]
    if kind == "text_only":
        msgs = [*head, {"role": "assistant", "content": f"I can look up {city}'s weather for you (request {i})."}]
    elif kind in ("call_only", "undeclared_tool", "bad_json", "schema_mismatch"):
        call = {"undeclared_tool": _call(f"call_{i}a", "book_flight", {"to": city}),
                "bad_json": _call(f"call_{i}a", "get_weather", '{"city": "Oslo" "unit": "C"}'),
                "schema_mismatch": _call(f"call_{i}a", "get_weather", {"city": city, "unit": "K"})}.get(kind, weather)
        msgs = [*head, {"role": "assistant", "content": None, "tool_calls": [call]},
                _tool(f"call_{i}a", {"temp": temp}), answer]
    elif kind == "text_and_call":
        msgs = [*head, {"role": "assistant", "content": "Let me check that.", "tool_calls": [weather]},
                _tool(f"call_{i}a", {"temp": temp}), answer]
    elif kind == "parallel":
        both = [weather, _call(f"call_{i}b", "get_time", {"city": city})]
        msgs = [*head, {"role": "assistant", "content": "", "tool_calls": both},
                _tool(f"call_{i}b", {"time": f"{hour}:00"}), _tool(f"call_{i}a", {"temp": temp}),
                {"role": "assistant", "content": f"In {city} it is {hour}:00 and {temp} degrees (request {i})."}]
    elif kind == "two_steps":
        msgs = [*head, {"role": "assistant", "content": None, "tool_calls": [weather]},
                _tool(f"call_{i}a", {"temp": temp}),
                {"role": "assistant", "content": f"Now {other}.",
                 "tool_calls": [_call(f"call_{i}b", "get_weather", {"city": other, "unit": "F"})]},
                _tool(f"call_{i}b", {"temp": temp + 40}),
                {"role": "assistant", "content": f"{city}: {temp} C; {other}: {temp + 40} F (request {i})."}]
    elif kind == "ends_on_call":
        msgs = [*head, {"role": "assistant", "tool_calls": [weather]}]
    elif kind == "parts":
        msgs = [head[0], {"role": "user", "content": [{"type": "text", "text": ask["content"]},
                                                      {"type": "text", "text": "Short answer please."}]},
                {"role": "assistant", "content": [{"type": "text", "text": answer["content"]}]}]
    elif kind == "weight_zero":
        msgs = [*head, {"role": "assistant", "content": f"Checking {city} (request {i}).", "weight": 0},
                {"role": "user", "content": "Thanks, go on."}, answer]
    elif kind == "unanswered":
        msgs = [*head, {"role": "assistant", "content": None, "tool_calls": [weather]},
                {"role": "user", "content": "Never mind."}, answer]
    elif kind == "image":
        msgs = [head[0], {"role": "user", "content": [{"type": "text", "text": ask["content"]},
                                                      {"type": "image_url", "image_url": {"url": "x.png"}}]}, answer]
    else:
        raise ValueError(kind)
    return {"tools": TOOLS, "messages": msgs}


def tool_rows(n: int = 120, seed: int = 0) -> list[tuple[dict, tuple]]:
    """(row, (kind, kept, field, reason)) for n rows; reasons with {i} are filled in for the row."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind, kept, field, reason = KINDS[i % len(KINDS)]
        out.append((row(kind, i, rnd), (kind, kept, field, reason.format(i=i) if reason else None)))
    return out


def calls_in(row: dict) -> list[tuple[str, dict]]:
    """(name, arguments) of every call in a raw row, as the row writes them."""
    return [(c["function"]["name"], json.loads(c["function"]["arguments"]))
            for m in row["messages"] for c in m.get("tool_calls") or ()]
