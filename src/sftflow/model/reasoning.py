"""Reasoning text (`<think>…</think>`) kept apart from the answer.

Reasoning models (Qwen 3, DeepSeek-R1 and their fine-tunes) write their thinking between
`<think>` and `</think>` before the answer; Qwen 3's template even adds an empty block to every
last answer. Training keeps it exactly as the template renders it (or drops it from the data
with `train.reasoning: drop`); everything that judges or returns an answer splits it off first,
the way vLLM's reasoning parsers do: task metrics score the answer only, `serve` returns the
thinking as `reasoning_content`, review and the report show it apart.

`reply_parts` reads a generated reply apart for every family in one place (eval, serve, chat and
the GGUF check): gpt-oss's harmony channels (`model/harmony.py`: analysis → reasoning, final →
answer, read off the text decoded with its special tokens), otherwise a `<think>` block, with or
without the opening tag (the R1 distills' generation prompt writes it).
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


def reply_parts(chat, ids, prompt: str = "") -> tuple[str | None, str]:
    """(reasoning or None, answer) of generated token ids (end-of-turn and pad tokens after them allowed).
    A `prompt` (the rendered text they follow) that ends inside an open `<think>` block (the R1 distills'
    generation prompt) makes the reply reasoning up to its `</think>`, all of it when it never closes."""
    from sftflow.model import harmony

    tok = chat.tokenizer  # chat: the tokenizer's ChatTemplate
    if chat.harmony:
        thought, answer, _ = harmony.parse(tok.decode(ids, skip_special_tokens=False), tuple(tok.all_special_tokens))
        return thought, answer.strip()
    text = tok.decode(ids, skip_special_tokens=True).strip()
    return split_reasoning(OPEN + text if opens_reasoning(prompt) else text)


def opens_reasoning(prompt: str) -> bool:
    """Whether a rendered prompt ends inside a `<think>` block its generation prompt opened."""
    return prompt.rstrip().endswith(OPEN)


def joined(reasoning: str | None, answer: str) -> str:
    """Reasoning and answer as one text `split_reasoning` reads apart again (a `<think>` block in front)."""
    return answer if reasoning is None else f"{OPEN}\n{reasoning}\n{CLOSE}\n\n{answer}"


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
