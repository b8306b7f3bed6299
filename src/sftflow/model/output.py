"""What a generated reply says: its text read back into content, reasoning and tool calls, in one place.

    from sftflow.model.output import parse_reply
    reply = parse_reply(text, chat.call_syntax)   # chat: the tokenizer's ChatTemplate

eval (the tool-call metrics), serve (`message.tool_calls`, streamed `delta.tool_calls`), `sftflow chat`
and the GGUF check read replies through here; none of them parses a reply by itself.

How a model writes a call is its family's syntax, and the syntax is read off the model's own chat
template: `derive_call_syntax` (once per tokenizer, `ChatTemplate.call_syntax`) renders a known call through the template and reads the wrapping around
its JSON (what opens a call, what closes it, the keys of name and arguments, the text up to the
arguments that a forced call is prefilled with). The wrapping is then matched to an entry of
`SYNTAXES`, the explicit parsers of the known families:

  hermes       <tool_call>{"name": …, "arguments": {…}}</tool_call>    Hermes, Qwen 2.5/3, SmolLM3, tiny
  mistral      [TOOL_CALLS][{"name": …, "arguments": {…}}, …]            Mistral (v3 tokenizers)
  mistral_args [TOOL_CALLS]name[ARGS]{…} (one per call)                  Mistral Small 3.1+, Magistral, Devstral
  llama3_json  <|python_tag|>{"name": …, "parameters": {…}}            Llama 3.1 / 3.2 (the tag optional)
  json         {"name": …, "arguments": {…}} or a list of them, bare   templates with no wrapping
  harmony      to=functions.name<|channel|>commentary json<|message|>{…}<|call|>   gpt-oss

A family with another wrapping works from the derived entry alone. Openers that are special tokens
(Mistral's `[TOOL_CALLS]`) vanish from text decoded with `skip_special_tokens=True`, so a reply
whose whole answer is call JSON is read as calls whatever the syntax. Adding a family is one
`CallSyntax` entry; one with a grammar of its own gives the entry a `parse` function: Mistral's
`[ARGS]` calls, and gpt-oss's harmony calls, which model/harmony.py reads off the reply's channels
(a message addressed `to=functions.NAME`) and writes after the final text as
`to=functions.NAME<|message|>{args}<|call|>`. Reasoning (`<think>`, harmony's analysis channel) is
split off by model/reasoning.py's functions first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sftflow.example import Message, ToolCall
from sftflow.model import harmony
from sftflow.model.reasoning import split_reasoning

_NAME_KEYS = ("name",)
_ARGS_KEYS = ("arguments", "parameters")
_SEPARATORS = re.compile(r"[\s,;]*")


@dataclass(frozen=True)
class Reply:
    """A generated reply, read: the answer's text, its reasoning apart, the calls it makes."""

    content: str
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    def message(self) -> Message:
        return Message("assistant", self.content, self.tool_calls, reasoning=self.reasoning)

    @property
    def answer_text(self) -> str:
        """The answer as eval's text metrics see it: the content, or the calls as JSON when it only
        calls tools (the same text as `Example.answer_text` of a reference answer)."""
        return self.message().answer_text


@dataclass(frozen=True)
class CallSyntax:
    """How one family writes tool calls. `open` starts a call ("" for bare JSON), `close` ends one;
    `head` (from the template, with `{name}` for the tool's name) is the text of a call up to its
    arguments, what a forced call is prefilled with; `parse(text) -> (content, calls)` replaces the
    JSON reader for a family with a grammar of its own."""

    name: str
    open: str
    close: str = ""
    head: str = ""
    parse: Callable[[str], tuple[str, list[ToolCall]]] | None = field(default=None, compare=False)


_NAMED_CALL = re.compile(r"\s*\[TOOL_CALLS\]\s*([^\s\[\]{}]+)\s*(?:\[CALL_ID\]\s*([^\s\[]+)\s*)?\[ARGS\]\s*")
_NAMED_CALL_DECODED = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*(?=\{)")  # the same with its special tokens decoded away


def _parse_named_calls(text: str) -> tuple[str, list[ToolCall]]:
    """Mistral's newer calls, `[TOOL_CALLS]name[ARGS]{arguments}` (a `[CALL_ID]id` may sit between),
    one after another. Decoded without special tokens a call is `name{arguments}`: read as calls only
    when the whole reply is such calls, so an answer that merely holds JSON stays text."""
    start = text.find("[TOOL_CALLS]")
    pattern, pos = (_NAMED_CALL, start) if start >= 0 else (_NAMED_CALL_DECODED, 0)
    decoder, calls = json.JSONDecoder(), []
    while (m := pattern.match(text, pos)) is not None:
        try:
            value, pos = decoder.raw_decode(text, m.end())
        except ValueError:
            break
        args = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        call_id = (m.group(2) or "") if pattern is _NAMED_CALL else ""
        calls.append(ToolCall(call_id, m.group(1), args))
    if not calls or (start < 0 and text[pos:].strip()):
        return text.strip(), []
    return text[:max(start, 0)].strip(), calls


_HARMONY_CALL = re.compile(rf"\s*{re.escape(harmony.RECIPIENT)}([\w.-]+)[^{{\[]*?{re.escape(harmony.MESSAGE)}\s*")


def _parse_harmony_calls(text: str) -> tuple[str, list[ToolCall]]:
    """gpt-oss's calls as model/harmony.py writes them into the answer (`to=functions.NAME<|message|>{…}<|call|>`),
    or as a forced call's prefill leaves them (the template's whole header before `<|message|>`)."""
    start = text.find(harmony.RECIPIENT)
    if start < 0:
        return text.strip(), []
    decoder, calls, pos = json.JSONDecoder(), [], start
    while (m := _HARMONY_CALL.match(text, pos)) is not None:
        try:
            value, pos = decoder.raw_decode(text, m.end())
        except ValueError:
            break
        calls.append(ToolCall("", m.group(1), value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)))
        pos = _SEPARATORS.match(text, pos).end()
        pos += len(harmony.CALL) if text.startswith(harmony.CALL, pos) else 0
    if not calls:
        return text.strip(), []
    return text[:start].strip(), calls


SYNTAXES = {s.name: s for s in [
    CallSyntax("hermes", "<tool_call>", "</tool_call>", '<tool_call>\n{{"name": "{name}", "arguments": '),
    CallSyntax("mistral", "[TOOL_CALLS]", "", '[TOOL_CALLS][{{"name": "{name}", "arguments": '),
    CallSyntax("mistral_args", "[TOOL_CALLS]", "", "[TOOL_CALLS]{name}[ARGS]", parse=_parse_named_calls),
    CallSyntax("llama3_json", "<|python_tag|>", "", '{{"name": "{name}", "parameters": '),
    CallSyntax("json", "", "", '{{"name": "{name}", "arguments": '),
    CallSyntax("harmony", harmony.RECIPIENT, harmony.CALL, harmony.call_text("{name}", "", closed=False),
               parse=_parse_harmony_calls),
]}


# ------------------------------------------------------------------------------ reading a reply


def parse_reply(text: str, syntax: CallSyntax | None = None, *, tools: bool = True) -> Reply:
    """The reply's reasoning (a `<think>` block), content and tool calls. `syntax` None tries every
    known family; `tools=False` (no tools offered) reads no calls."""
    reasoning, answer = split_reasoning(text)
    if not tools:
        return Reply(answer.strip(), reasoning)
    content, calls = parse_calls(answer, syntax)
    return Reply(content, reasoning, tuple(calls))


def parse_calls(text: str, syntax: CallSyntax | None = None) -> tuple[str, list[ToolCall]]:
    """(content, calls): the text before the first call, and every call. Calls the syntax cannot read
    leave the text as it is (content, no calls): a malformed call is the model's answer, scored as such."""
    if syntax is not None and syntax.parse is not None:
        return syntax.parse(text)
    for s in [syntax] if syntax is not None else list(SYNTAXES.values()):
        if s.parse is not None:
            content, calls = s.parse(text) if s.open in text else (text, [])
            if calls:
                return content, calls
        elif s.open and s.open in text:
            before, _, rest = text.partition(s.open)
            calls = _read_calls(s.open + rest, s)
            if calls is not None:
                return before.strip(), calls
    calls = _bare_calls(text)  # an opener that is a special token is gone from decoded text
    if calls is not None:
        return "", calls
    return text.strip(), []


def call_start(text: str, syntax: CallSyntax | None) -> int | None:
    """Where a call begins, or may begin, in text still being generated (streaming holds it back
    until it can be parsed whole); None when the text so far is all content."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return 0
    if syntax is not None and syntax.parse is _parse_named_calls and re.fullmatch(r"[A-Za-z_][\w.-]*(\{.*)?", stripped, re.S):
        return 0  # `name{arguments}`, its [TOOL_CALLS] and [ARGS] decoded away, may be arriving
    opens = [syntax.open] if syntax is not None else [s.open for s in SYNTAXES.values()]
    starts = [text.find(o) for o in opens if o and o in text]
    if starts:
        return min(starts)
    for o in opens:  # the opener may be arriving: its first characters end the text
        for k in range(min(len(o) - 1, len(text)), 0, -1):
            if o and text.endswith(o[:k]):
                return len(text) - k
    return None


def _read_calls(text: str, s: CallSyntax) -> list[ToolCall] | None:
    decoder, calls, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        pos = _SEPARATORS.match(text, pos).end()
        if text.startswith(s.open, pos):
            pos = _SEPARATORS.match(text, pos + len(s.open)).end()
        elif calls:
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return calls or None
        got = _as_calls(value)
        if got is None:
            return calls or None
        calls += got
        pos = _SEPARATORS.match(text, pos).end()
        if s.close and text.startswith(s.close, pos):
            pos += len(s.close)
    return calls or None


def _bare_calls(text: str) -> list[ToolCall] | None:
    body = text.strip().removeprefix("<|python_tag|>").strip()
    if body[:1] not in ("{", "["):
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(body)
    except ValueError:
        return None
    rest = body[end:].strip()
    calls = _as_calls(value)
    while calls is not None and rest.startswith(";"):  # Llama 3.2 separates parallel calls with ';'
        try:
            value, end = json.JSONDecoder().raw_decode(rest[1:].strip())
        except ValueError:
            return None
        more = _as_calls(value)
        if more is None:
            return None
        calls, rest = calls + more, rest[1:].strip()[end:].strip()
    return calls if calls and not rest else None


def _as_calls(value) -> list[ToolCall] | None:
    """A call object ({"name", "arguments"|"parameters"}), or a list of them, as ToolCalls."""
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            return None
        args = next((item[k] for k in _ARGS_KEYS if k in item), {})
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        calls.append(ToolCall(str(item.get("id") or ""), item["name"], args))
    return calls or None


# ------------------------------------------------------------------ the syntax from the template

_PROBE_NAME = "sftflow_probe_call"
_PROBE_TOOL = {"type": "function", "function": {"name": _PROBE_NAME, "description": "probe",
                                                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}


def derive_call_syntax(chat) -> CallSyntax | None:
    """The family's syntax, read off how the template (`chat`, a ChatTemplate) renders a known call, once per
    tokenizer: `ChatTemplate.call_syntax`; None when the template renders no calls (then every known syntax
    is tried)."""
    from sftflow.model.chat import render

    tok = chat.tokenizer
    call = {"id": "call00001", "type": "function", "function": {"name": _PROBE_NAME, "arguments": '{"q": "x"}'}}
    user = [{"role": "user", "content": "hi"}]
    try:
        prompt = render(chat, user, add_generation_prompt=True, tools=[_PROBE_TOOL])
        full = render(chat, [*user, {"role": "assistant", "content": "", "tool_calls": [call]}], tools=[_PROBE_TOOL])
    except Exception:  # noqa: BLE001 - a template without tools (SftflowError) or one that raises
        return None
    if not full.startswith(prompt) or _PROBE_NAME not in full[len(prompt):]:
        return None
    tail = split_reasoning(full[len(prompt):])[1] if "</think>" in full[len(prompt):] else full[len(prompt):]
    if f"{_PROBE_NAME}[ARGS]" in tail:  # a grammar of its own: name, then [ARGS], then the arguments alone
        return SYNTAXES["mistral_args"]
    if harmony.RECIPIENT + _PROBE_NAME in tail:  # harmony: the call is a message to the function, its text the arguments
        header = tail[: tail.find(harmony.MESSAGE, tail.find(_PROBE_NAME)) + len(harmony.MESSAGE)]
        header = header.rpartition(harmony.START + "assistant")[2]  # the call's own message, after the analysis
        return replace(SYNTAXES["harmony"], head=header.replace(_PROBE_NAME, "{name}"))
    at = tail.find(_PROBE_NAME)
    span = _json_around(tail, at)
    if span is None:
        return None
    start, end = span
    opener = tail[:start].strip()
    closer = tail[end:]
    for special in getattr(tok, "all_special_tokens", []) or []:  # the end of turn is not the call's
        if special and special in closer:
            closer = closer[: closer.find(special)]
    value = json.loads(tail[start:end])
    obj = value[0] if isinstance(value, list) else value
    args_key = next((k for k in _ARGS_KEYS if k in obj), None)
    if args_key is None:
        return None
    args_at = tail.find(f'"{args_key}"', at)
    colon = tail.find(":", args_at) + 1
    head = tail[tail.find(opener) if opener else start: colon].replace("{", "{{").replace("}", "}}")
    head = head.replace(_PROBE_NAME, "{name}").lstrip() + " "
    base = next((s for s in SYNTAXES.values() if s.open and s.open == opener), None)
    if base is None:
        base = SYNTAXES["llama3_json"] if not opener and args_key == "parameters" else (
            SYNTAXES["json"] if not opener else CallSyntax("derived", opener, closer.strip()))
    return replace(base, open=opener, head=head)


def _json_around(text: str, at: int) -> tuple[int, int] | None:
    """The outermost JSON value in `text` that holds position `at`."""
    decoder, best = json.JSONDecoder(), None
    for start in range(at, -1, -1):
        if text[start] not in "{[":
            continue
        try:
            _, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if end > at:
            best = (start, end)
    return best


def call_prefix(syntax: CallSyntax | None, name: str | None) -> str:
    """The text a reply is prefilled with to force a call: to the named tool (`tool_choice` naming
    a function), or to any (`"required"`: the opener alone). "" when the syntax cannot force one."""
    if syntax is None or not syntax.head:
        return ""
    if name is not None:
        return syntax.head.format(name=name.replace('"', ""))
    return syntax.open or syntax.head.partition("{name}")[0].replace("{{", "{")
