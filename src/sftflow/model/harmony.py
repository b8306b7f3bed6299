"""gpt-oss's harmony format: a reply is messages on channels, read apart into reasoning and answer.

    <|channel|>analysis<|message|>The user asks X.<|end|><|start|>assistant<|channel|>final<|message|>Paris.<|return|>

After the generation prompt `<|start|>assistant` the model writes one or more messages, each a
header (`<|channel|>analysis`, `<|channel|>final`, `to=functions.f<|channel|>commentary json`) then
`<|message|>` and the text, closed by `<|end|>` (more follows), `<|return|>` (the reply is done)
or `<|call|>` (a tool call). The analysis channel is the reasoning (`reasoning_content`), the
final channel the answer (`content`). The reply must be decoded with its special tokens:
`skip_special_tokens=True` drops the markers and keeps the channel names, gluing them onto the
text ("analysisThe user asks X.assistantfinalParis.").
"""

from __future__ import annotations

START, CHANNEL, MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
CLOSERS = ("<|end|>", "<|return|>", "<|call|>")


def is_harmony(tok) -> bool:
    """Whether the tokenizer's chat template writes harmony channels (once per tokenizer: `ChatTemplate.harmony`)."""
    template = tok.chat_template or ""
    return CHANNEL in template and MESSAGE in template and CHANNEL in tok.get_vocab()


def messages(text: str) -> list[tuple[str, str, bool]]:
    """(channel, text, closed) of each message in a reply decoded with its special tokens; the last may be
    unfinished (still generating, or cut by max_tokens). A header still being written is not a message yet."""
    out = []
    for part in text.split(START):
        header, marked, body = part.partition(MESSAGE)
        if not marked:
            continue
        channel = header.partition(CHANNEL)[2].split(" ")[0].strip() if CHANNEL in header else ""
        ends = [i for i in (body.find(c) for c in CLOSERS) if i >= 0]
        closed = bool(ends)
        out.append((channel, body[: min(ends)] if ends else body, closed))
    return out


def parse(text: str, specials: tuple[str, ...] = ()) -> tuple[str | None, str, bool]:
    """(reasoning or None, answer, whether the answer has begun) of a reply decoded with its special tokens.
    Text without any channel (a model that never learned the format) is all answer, `specials` removed."""
    found = messages(text)
    if not found and CHANNEL not in text:
        for s in specials:
            text = text.replace(s, "")
        return None, text, True
    analysis = [body for channel, body, _ in found if channel == "analysis"]
    final = [body for channel, body, _ in found if channel == "final"]
    reasoning = "\n".join(b.strip() for b in analysis) if analysis else None
    return reasoning, "".join(final), bool(final)
