"""Render chats with the one template and build the loss mask from the rendered spans.

TRL's `assistant_only_loss` needs `{% generation %}` markers that most hub templates lack,
so sftflow computes the mask itself, for any template (`model/masks.py`): every assistant turn
is located in the rendering of the whole conversation, from the end of its header through its
end-of-turn token, and tokens are mapped to those spans through the fast tokenizer's offsets.
The last answer follows the prompt exactly as serving renders it, so training sees the tokens
a served model is given. A template that refuses a system role gets the system prompt folded
into the first user turn (`model/system_role.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sftflow.errors import SftflowError
from sftflow.model.masks import training_text
from sftflow.model.reasoning import drop_reasoning
from sftflow.model.system_role import fold_system, refuses_system


@dataclass
class TokenizedChat:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 where the token is trained on (assistant content + its end-of-turn token)
    truncated: bool = False
    full_length: int = 0  # tokens before truncation


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    if refuses_system(tokenizer):
        messages = fold_system(messages)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The text to train on and the character spans of every assistant turn in it."""
    if refuses_system(tokenizer):
        messages = fold_system(messages)
    draw = lambda msgs, gen: tokenizer.apply_chat_template(msgs, tokenize=False,  # noqa: E731
                                                           add_generation_prompt=gen)
    return training_text(tokenizer, draw, messages)


def tokenize_chat(tokenizer, messages: list[dict], max_length: int | None = None,
                  reasoning: bool = True) -> TokenizedChat:
    """`reasoning=False` (train.reasoning: drop) trains answers without their `<think>` blocks."""
    if not getattr(tokenizer, "is_fast", False):
        raise SftflowError("sftflow needs a fast (Rust) tokenizer for answer-only loss masks; this model has a slow one")
    if not reasoning:
        messages = drop_reasoning(messages)
    full, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = [0] * len(ids)
    k = 0
    for start, end in spans:  # spans and tokens are both in text order
        while k < len(ids) and offsets[k][0] < start:
            k += 1
        while k < len(ids) and offsets[k][0] < end:
            mask[k] = int(offsets[k][1] > offsets[k][0])
            k += 1
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


def tokenize_record(tokenizer, record: dict, max_length: int | None = None, reasoning: bool = True) -> TokenizedChat:
    if "text" in record:
        return tokenize_text(tokenizer, record["text"], max_length)
    return tokenize_chat(tokenizer, record["messages"], max_length, reasoning)


def prompt_messages(record: dict) -> list[dict]:
    """Everything before the final assistant answer: what the model is asked at evaluation."""
    return record["messages"][:-1]
