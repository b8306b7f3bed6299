"""The canonical record, typed: an `Example` of `Message`s, with the tools it may call.

    ex = Example.from_dict(json.loads(line))      # a line of train|val|test.jsonl
    ex.prompt, ex.answer, ex.texts(), ex.tools    # what every stage asks; never a dict's shape

Every reader in formats.py builds one, and every stage reads the data folder through it
(DESIGN.md, "The canonical record"). On disk it is the OpenAI chat shape: `messages` with
`tool_calls` (`id`, `type: function`, `function: {name, arguments}` where `arguments` is a JSON
string, as OpenAI sends it), `tool_call_id` on tool results, `reasoning` on assistant turns, and
`tools` as OpenAI tool definitions. A message that must not be trained (`weight: 0` /
`train: false` in the source) carries `"train": false`. Fields this module does not know are kept
in `extra` and written back, so a round trip drops nothing.

Chat templates want the arguments of a call as an object (most `tojson` them): `template_messages`
gives the messages in that shape, the one call that renders them for train, eval and serve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
_REASONING_KEYS = ("reasoning_content", "thinking")  # the same thing under DeepSeek's/vLLM's and gpt-oss's names
_RECORD_KEYS = ("id", "tools", "messages", "text", "source", "group", "quality")


@dataclass(frozen=True)
class ToolCall:
    """One function call an assistant turn makes; `arguments` is the JSON text of its arguments."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> Any:
        """The arguments as an object (what chat templates render); the text itself if it is not JSON."""
        try:
            return json.loads(self.arguments)
        except ValueError:
            return self.arguments

    def to_dict(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    @classmethod
    def from_dict(cls, d: dict) -> ToolCall:
        fn = d.get("function") or {}
        args = fn.get("arguments", "{}")
        return cls(str(d.get("id") or ""), str(fn.get("name") or ""),
                   args if isinstance(args, str) else json.dumps(args, ensure_ascii=False))


@dataclass(frozen=True)
class Tool:
    """A function the conversation may call: name, description and JSON schema of its parameters."""

    name: str
    description: str = ""
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_dict(self) -> dict:
        fn: dict = {"name": self.name}
        if self.description:
            fn["description"] = self.description
        fn["parameters"] = self.parameters
        return {"type": "function", "function": fn}

    @classmethod
    def from_dict(cls, d: dict) -> Tool:
        fn = d.get("function", d)
        return cls(str(fn.get("name") or ""), str(fn.get("description") or ""),
                   fn.get("parameters") or {"type": "object", "properties": {}})


@dataclass(frozen=True)
class Message:
    """One turn. `train=False`: kept as context, never trained (a source's `weight: 0` / `train: false`)."""

    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # on a tool result: the call it answers
    name: str | None = None  # on a tool result: the tool's name, when the source gives it
    reasoning: str | None = None  # an assistant turn's thinking, apart from its content
    train: bool = True
    extra: dict = field(default_factory=dict)  # fields a reader carried without understanding them

    def texts(self) -> list[str]:
        """Every text in the turn: content, reasoning, each call's name and arguments."""
        out = [self.content] if self.content else []
        if self.reasoning:
            out.append(self.reasoning)
        for call in self.tool_calls:
            out += [call.name, call.arguments]
        return out

    @property
    def answer_text(self) -> str:
        """The turn as an answer's text: its content, or its calls as JSON when it only calls tools."""
        if self.content or not self.tool_calls:
            return self.content
        return json.dumps([{"name": c.name, "arguments": c.parsed_arguments()} for c in self.tool_calls],
                          ensure_ascii=False)

    def to_dict(self) -> dict:
        d: dict = {"role": self.role, "content": self.content}
        if self.tool_calls:
            d["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            d["name"] = self.name
        if self.reasoning is not None:
            d["reasoning"] = self.reasoning
        if not self.train:
            d["train"] = False
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, d: dict) -> Message:
        known = {"role", "content", "tool_calls", "tool_call_id", "name", "reasoning", "train", *_REASONING_KEYS}
        reasoning = next((d[k] for k in ("reasoning", *_REASONING_KEYS) if d.get(k) is not None), None)
        return cls(d["role"], d.get("content") or "",
                   tuple(ToolCall.from_dict(c) for c in d.get("tool_calls") or ()),
                   d.get("tool_call_id"), d.get("name"), reasoning, d.get("train", True) is not False,
                   {k: v for k, v in d.items() if k not in known})

    def for_template(self, reasoning: str = "inline") -> dict:
        """The turn as chat templates read it: call arguments as objects, no sftflow-only keys. Keys a
        template tests for presence (`'tool_calls' in message`: Llama 3.1) appear only when set.
        `reasoning` is how the template takes a turn's reasoning (`model/chat.py` finds out): `inline`, a
        `<think>` block in front of the content; `thinking` (gpt-oss) or `reasoning_content` (Qwen 3), that key;
        `none`, left out (a template that would drop it anyway)."""
        d: dict = {"role": self.role, "content": self.content}
        if self.tool_calls:
            d["tool_calls"] = [{"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": c.parsed_arguments()}}
                               for c in self.tool_calls]
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            d["name"] = self.name
        if self.reasoning and reasoning in ("thinking", "reasoning_content"):
            d[reasoning] = self.reasoning
        elif self.reasoning and reasoning == "inline":  # rendered the way reasoning models write it, in front of the answer
            d["content"] = f"<think>\n{self.reasoning}\n</think>\n\n{self.content}"
        return d


@dataclass
class Example:
    """A training example: a conversation (with the tools it may call), or plain text for continued
    pre-training. `id`, `source`, `group` and `quality` are set by `prepare`."""

    messages: list[Message] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    text: str | None = None
    id: str | None = None
    source: dict | None = None
    group: str | None = None
    quality: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def is_text(self) -> bool:
        return self.text is not None

    @property
    def prompt(self) -> list[Message]:
        """Everything before the final assistant answer: what the model is asked at evaluation."""
        return self.messages[:-1]

    @property
    def answer(self) -> Message | None:
        """The final assistant turn (None for plain text)."""
        return self.messages[-1] if self.messages and self.messages[-1].role == "assistant" else None

    @property
    def answer_text(self) -> str:
        """The final answer as text: its content, or its calls as JSON when it only calls tools."""
        if self.is_text:
            return self.text or ""
        return self.answer.answer_text if self.answer is not None else ""

    @property
    def system(self) -> str | None:
        return self.messages[0].content if self.messages and self.messages[0].role == "system" else None

    def texts(self) -> list[str]:
        """Every text the example holds (for personal-data scans, quality): turns, calls, tool descriptions."""
        if self.is_text:
            return [self.text or ""]
        return [t for m in self.messages for t in m.texts()]

    def template_messages(self) -> list[dict]:
        return template_messages(self.messages)

    def template_tools(self) -> list[dict] | None:
        return [t.to_dict() for t in self.tools] or None

    def to_dict(self) -> dict:
        d: dict = {}
        if self.id is not None:
            d["id"] = self.id
        if self.is_text:
            d["text"] = self.text
        else:
            if self.tools:
                d["tools"] = [t.to_dict() for t in self.tools]
            d["messages"] = [m.to_dict() for m in self.messages]
        for key in ("source", "group", "quality"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return {**d, **{k: v for k, v in self.extra.items() if k not in d}}

    @classmethod
    def from_dict(cls, d: dict) -> Example:
        """A canonical record (a data-folder line); old folders without tools read alike."""
        return cls([Message.from_dict(m) for m in d.get("messages") or ()],
                   [Tool.from_dict(t) for t in d.get("tools") or ()],
                   d.get("text"), d.get("id"), d.get("source"), d.get("group"), d.get("quality"),
                   {k: v for k, v in d.items() if k not in _RECORD_KEYS})

    @classmethod
    def of(cls, record: Example | dict) -> Example:
        """The record typed (stages that still pass dicts around hand them in as they are)."""
        return record if isinstance(record, Example) else cls.from_dict(record)


def template_messages(messages: list[Message] | list[dict], reasoning: str = "inline") -> list[dict]:
    """Messages (typed, or canonical dicts) as chat templates read them (`reasoning`: see `for_template`)."""
    return [(m if isinstance(m, Message) else Message.from_dict(m)).for_template(reasoning) for m in messages]
