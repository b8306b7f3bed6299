"""Where each assistant turn lies in a rendered conversation, for any chat template.

Templates are free to render a turn differently once later turns follow: Qwen 3 drops the
`<think>` block of every answer before the last question, Mistral moves the system prompt into
whichever user turn comes last, Phi-3 ends a whole conversation with an extra eos. So the
turns are located in one rendering, never by rendering prefixes and assuming they line up:

- the text a turn's content became is found by rendering the same messages with that content
  replaced by a sentinel character: the two texts differ exactly where the content went;
- the turn begins right after the assistant header (the generation prompt, e.g.
  `<|im_start|>assistant\\n`), so template text the model must produce itself (Qwen 3's
  `<think>\\n`) is trained, and ends with the template's end-of-turn token, included so the
  model learns to stop.

The sequence trained on is the prompt exactly as serving renders it (every message but the
last, with the generation prompt) followed by the last answer as the full rendering writes it:
the tokens a served model is given are the tokens it was trained on (tests/model/test_families.py).
"""

from __future__ import annotations

import os

from sftflow.errors import SftflowError
from sftflow.model.special_tokens import SENTINEL, closing_token

REASONING_SENTINEL = "\ue001"  # stands for a turn's reasoning where the template reads it from a field


def changed_region(a: str, b: str) -> tuple[int, int]:
    """[start, end) in `a` of the part that differs from `b` (common prefix and suffix removed)."""
    start = len(os.path.commonprefix([a, b]))
    tail = len(os.path.commonprefix([a[start:][::-1], b[start:][::-1]]))
    return start, len(a) - tail


def assistant_header(render, messages: list[dict]) -> str:
    """The text the template adds to open an assistant turn (its generation prompt)."""
    with_prompt = render(messages, True)
    without = render(messages, False)
    return with_prompt[len(os.path.commonprefix([with_prompt, without])):]


def turn_spans(chat, render, messages: list[dict], text: str, header: str, add_generation_prompt: bool,
               turns: list[int]) -> list[tuple[int, int]]:
    """Character spans in `text` (= render(messages, add_generation_prompt)) of the assistant turns
    at the given message indexes: from the end of the header through the special token that closes it."""
    regions = []
    for i in turns:
        try:
            try:
                probed = render(_probe(messages, i), add_generation_prompt)
            except Exception:  # noqa: BLE001 - a template that wants a call before each tool result (gpt-oss)
                if not messages[i].get("tool_calls"):
                    raise
                probed = render(_probe_calls(messages, i), add_generation_prompt)
            start, end = changed_region(text, probed)
        except Exception as err:  # noqa: BLE001 - the template's own error, named with the turn
            raise SftflowError(f"assistant turn {_ordinal(messages, i)}: the chat template cannot render it ({err})") \
                from err
        found = closing_token(chat.special_texts, text, end)
        if found is None:
            raise SftflowError(f"assistant turn {_ordinal(messages, i)}: the chat template puts no special token "
                               "after an assistant answer, so a tuned model could not learn where to stop; set "
                               "model.chat_template to a template whose turns end with one")
        regions.append((start, found))
    closers = set(chat.reply_enders) | {found[1] for _, found in regions}  # what ends a turn, here
    spans, floor = [], 0
    for start, (at, closer) in regions:
        if header:  # back to the header's end, over template text inside the turn (Qwen 3's `<think>\n`)
            opened = text.rfind(header, floor, start)
            if opened >= 0 and not any(c in text[opened:start] for c in closers):
                start = opened + len(header)
        spans.append((start, at + len(closer)))
        floor = at + len(closer)
    return spans


def _probe(messages: list[dict], i: int) -> list[dict]:
    """The conversation with turn i's content replaced by the sentinel. A turn that calls tools becomes a
    plain turn of the sentinel, so the changed region covers its text and its call markup alike (Mistral's
    `[TOOL_CALLS]` has no header before it to back up to)."""
    turn = messages[i]
    if turn.get("tool_calls"):
        turn = {"role": turn["role"], "content": SENTINEL}
    else:
        turn = dict(turn, content=SENTINEL)
        for key in ("thinking", "reasoning_content"):  # the reasoning is the turn's too (gpt-oss's analysis)
            if key in messages[i]:
                turn[key] = REASONING_SENTINEL
    return [turn if k == i else m for k, m in enumerate(messages)]


def _probe_calls(messages: list[dict], i: int) -> list[dict]:
    """Turn i still calling its tools, with its text and every call's arguments replaced by sentinels: for
    templates that refuse a tool result with no call before it. The changed region then runs from the
    turn's text (or its first call's arguments) to its last call's arguments; the header back-up and the
    closing token take it to the turn's edges, the call markup between included."""
    turn = messages[i]
    calls = [dict(c, function=dict(c["function"], arguments={"sentinel": SENTINEL})) for c in turn["tool_calls"]]
    probe = dict(turn, content=SENTINEL if turn.get("content") else turn.get("content"), tool_calls=calls)
    return [probe if k == i else m for k, m in enumerate(messages)]


def _ordinal(messages: list[dict], i: int) -> str:
    n = sum(1 for m in messages[: i + 1] if m["role"] == "assistant")
    return f"{n} (message {i + 1})"


def training_text(chat, render, messages: list[dict], untrained: set[int] = frozenset()) -> tuple[str, list[tuple[int, int]]]:
    """The text to train on and the character spans of its trained assistant turns (each through its
    end-of-turn token), for the template whose facts `chat` (a ChatTemplate) holds. `render(messages, add_generation_prompt)` renders with the template; `untrained`
    holds the ordinals (0-based, among assistant turns) of turns kept as context only (`weight: 0`).
    Tool results and the tool list are never trained: only assistant turns have spans."""
    last = len(messages) - 1
    if messages[last]["role"] != "assistant":
        raise SftflowError("a conversation to train on must end with an assistant turn")
    context = messages[:last]
    prompt = render(context, True)
    header = assistant_header(render, context)
    full = render(messages, False)
    (start, end), = turn_spans(chat, render, messages, full, header, False, [last])
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    earlier = [i for k, i in enumerate(assistants[:-1]) if k not in untrained]
    spans = turn_spans(chat, render, context, prompt, header, True, earlier) if earlier else []
    if len(assistants) - 1 not in untrained:
        spans.append((len(prompt), len(prompt) + end - start))
    return prompt + full[start:end], spans
