"""Render chats with the one template and build the loss mask from the rendered spans.

TRL's `assistant_only_loss` needs `{% generation %}` markers that most hub templates lack,
so sftflow computes the mask itself, for any template that renders conversations
prefix-stably (every template we know of): the assistant span of turn i is the text
between the render of messages[:i] (with the generation prompt) and the render of
messages[:i+1]. Tokens are mapped to spans through the fast tokenizer's offsets. Inside
a span, tokens after the turn's end-of-turn (eos) token are masked, so the model learns
to stop with eos and nothing after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sftflow.errors import SftflowError


@dataclass
class TokenizedChat:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 where the token is trained on (assistant content + its eos)
    truncated: bool = False
    full_length: int = 0  # tokens before truncation


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the character spans of every assistant turn in it."""
    full = render(tokenizer, messages)
    spans = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True)
        through = render(tokenizer, messages[: i + 1])
        if not (through.startswith(before) and full.startswith(through)):
            raise SftflowError(
                "the chat template does not render conversations prefix-stably (turn i's text changes when "
                "later turns are added), so the answer tokens cannot be located; set model.chat_template "
                "to a template that does"
            )
        spans.append((len(before), len(through)))
    return full, spans


def tokenize_chat(tokenizer, messages: list[dict], max_length: int | None = None) -> TokenizedChat:
    if not getattr(tokenizer, "is_fast", False):
        raise SftflowError("sftflow needs a fast (Rust) tokenizer for answer-only loss masks; this model has a slow one")
    full, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = [0] * len(ids)
    eos = tokenizer.eos_token_id
    for start, end in spans:
        inside = [k for k, (s, e) in enumerate(offsets) if start <= s < end and e > s]
        last_eos = max((k for k in inside if ids[k] == eos), default=None)
        for k in inside:
            if last_eos is None or k <= last_eos:
                mask[k] = 1
    full_length = len(ids)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, mask = ids[:max_length], mask[:max_length]
    return TokenizedChat(ids, mask, truncated, full_length)


def tokenize_text(tokenizer, text: str, max_length: int | None = None) -> TokenizedChat:
    """Plain-text rows (continued pre-training): every token is trained on, framed by bos/eos."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    ids.append(tokenizer.eos_token_id)
    full_length = len(ids)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids = ids[:max_length]
    return TokenizedChat(ids, [1] * len(ids), truncated, full_length)


def tokenize_record(tokenizer, record: dict, max_length: int | None = None) -> TokenizedChat:
    if "text" in record:
        return tokenize_text(tokenizer, record["text"], max_length)
    return tokenize_chat(tokenizer, record["messages"], max_length)


def prompt_messages(record: dict) -> list[dict]:
    """Everything before the final assistant answer: what the model is asked at evaluation."""
    return record["messages"][:-1]
