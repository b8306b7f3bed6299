"""Reasoning text (`<think>…</think>`) kept apart from the answer.

Reasoning models (Qwen 3, DeepSeek-R1 and their fine-tunes) write their thinking between
`<think>` and `</think>` before the answer; Qwen 3's template even adds an empty block to every
last answer. Training keeps it exactly as the template renders it (or drops it from the data
with `train.reasoning: drop`); everything that judges or returns an answer splits it off first,
the way vLLM's reasoning parsers do: task metrics score the answer only, `serve` returns the
thinking as `reasoning_content`, review and the report show it apart.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning or None, answer). An unclosed block (cut by max_tokens) is all reasoning."""
    thought, answer, _ = split_partial(text)
    return (thought, answer.strip()) if thought is not None else (None, text)


def split_partial(text: str) -> tuple[str | None, str, bool]:
    """(reasoning so far or None, answer so far, whether the block is closed), for text still being
    generated too. A reply without the opening tag but with the closing one started inside the
    block (templates whose generation prompt opens it, like DeepSeek-R1's)."""
    body = text.lstrip()
    if body.startswith(OPEN):
        body = body[len(OPEN):]
    elif CLOSE not in body or OPEN in body:
        return None, text, False
    if CLOSE in body:
        thought, _, answer = body.partition(CLOSE)
        return thought.strip(), answer.lstrip(), True
    return body.lstrip(), "", False


def answer_only(text: str) -> str:
    return split_reasoning(text)[1]


def drop_reasoning(messages: list) -> list:
    """Assistant messages without their reasoning (for `train.reasoning: drop`): the `reasoning` field of
    a typed message and a `<think>` block at the start of its content alike."""
    from dataclasses import replace

    out = []
    for m in messages:
        if isinstance(m, dict):
            if m["role"] == "assistant":
                thought, answer = split_reasoning(m["content"])
                m = dict(m, content=answer) if thought is not None else m
        elif m.role == "assistant":
            thought, answer = split_reasoning(m.content)
            m = replace(m, content=answer if thought is not None else m.content, reasoning=None)
        out.append(m)
    return out
