"""gpt-oss's harmony format: a reply is messages on channels, read apart into reasoning and answer.

    <|channel|>analysis<|message|>The user asks X.<|end|><|start|>assistant<|channel|>final<|message|>Paris.<|return|>

After the generation prompt `<|start|>assistant` the model writes one or more messages, each a
header (`<|channel|>analysis`, `<|channel|>final`, `to=functions.f<|channel|>commentary json`) then
`<|message|>` and the text, closed by `<|end|>` (more follows), `<|return|>` (the reply is done)
or `<|call|>` (a tool call). The analysis channel is the reasoning (`reasoning_content`), the
final channel the answer (`content`), and a message addressed to a function (`to=functions.NAME` in
its header, its text the JSON arguments) is a tool call: `parse` writes each into the answer after the
final text as `to=functions.NAME<|message|>{…}<|call|>`, where `output.py`'s harmony syntax reads it
(as it reads any family's calls in the answer). The reply must be decoded with its special tokens:
`skip_special_tokens=True` drops the markers and keeps the channel names, gluing them onto the
text ("analysisThe user asks X.assistantfinalParis.").
"""

from __future__ import annotations

import re
from typing import NamedTuple

START, CHANNEL, MESSAGE, CALL = "<|start|>", "<|channel|>", "<|message|>", "<|call|>"
CLOSERS = ("<|end|>", "<|return|>", CALL)
RECIPIENT = "to=functions."
_NAME = re.compile(r"[\w.-]+")


class Part(NamedTuple):
    """One message of a reply: its channel, the function it calls (None: none), its text, whether it is closed."""

    channel: str
    recipient: str | None
    body: str
    closed: bool


def call_text(name: str, arguments: str, closed: bool = True) -> str:
    """A call as `parse` writes it into the answer, and as the harmony syntax reads it."""
    return f"{RECIPIENT}{name}{MESSAGE}{arguments}{CALL if closed else ''}"


def is_harmony(tok) -> bool:
    """Whether the tokenizer's chat template writes harmony channels (once per tokenizer: `ChatTemplate.harmony`)."""
    template = tok.chat_template or ""
    return CHANNEL in template and MESSAGE in template and CHANNEL in tok.get_vocab()


def messages(text: str) -> list[Part]:
    """Each message in a reply decoded with its special tokens; the last may be unfinished (still
    generating, or cut by max_tokens). A header still being written is not a message yet. The recipient
    may stand before the channel (`assistant to=functions.f<|channel|>commentary json`) or after it."""
    out = []
    for part in text.split(START):
        header, marked, body = part.partition(MESSAGE)
        if not marked:
            continue
        channel = header.partition(CHANNEL)[2].split(" ")[0].strip() if CHANNEL in header else ""
        at = header.find(RECIPIENT)
        name = _NAME.match(header, at + len(RECIPIENT)) if at >= 0 else None
        ends = [i for i in (body.find(c) for c in CLOSERS) if i >= 0]
        out.append(Part(channel, name.group(0) if name else None, body[: min(ends)] if ends else body, bool(ends)))
    return out


def parse(text: str, specials: tuple[str, ...] = ()) -> tuple[str | None, str, bool]:
    """(reasoning or None, answer, whether the answer has begun) of a reply decoded with its special tokens;
    the answer is the final channel's text, then the calls (`call_text`). Text without any channel (a model
    that never learned the format) is all answer, `specials` removed."""
    found = messages(text)
    if not found and CHANNEL not in text:
        for s in specials:
            text = text.replace(s, "")
        return None, text, True
    said = [m for m in found if m.recipient is None]
    analysis = [m.body for m in said if m.channel == "analysis"]
    final = [m.body for m in said if m.channel == "final"]
    calls = [call_text(m.recipient, m.body, m.closed) for m in found if m.recipient is not None]
    reasoning = "\n".join(b.strip() for b in analysis) if analysis else None
    return reasoning, "".join(final) + "".join(calls), bool(final or calls)
