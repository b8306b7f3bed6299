"""Templates that refuse a system message (Gemma 2's raises "System role not supported").

The system message is folded into the first user turn the way Gemma's own later template does
it (Gemma 3: the system text, a blank line, then the user's text), so a dataset with system
prompts trains and serves on these models instead of stopping `prepare`. Training, evaluation
and serving all render through `model/chat.py`, so they fold alike.
"""

from __future__ import annotations

from sftflow.model.special_tokens import chat_roles


def refuses_system(tok) -> bool:
    """True when the template renders a conversation without a system message but not with one. Asked once
    per tokenizer: `ChatTemplate.refuses_system`."""
    try:
        tok.apply_chat_template(chat_roles(system=True), tokenize=False)
        refuses = False
    except Exception:  # noqa: BLE001 - jinja2's TemplateError, or whatever the template raises
        tok.apply_chat_template(chat_roles(), tokenize=False)  # a template that renders nothing: its own error
        refuses = True
    return refuses


def fold_system(messages: list[dict]) -> list[dict]:
    """Leading system message(s) prepended to the first user message, followed by a blank line."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return messages
    prefix = "\n\n".join(system) + "\n\n"
    for i, m in enumerate(rest):
        if m["role"] == "user":
            return [*rest[:i], dict(m, content=prefix + m["content"]), *rest[i + 1:]]
    return [{"role": "user", "content": prefix.rstrip("\n")}, *rest]


FOLD_NOTE = ("the chat template refuses a system role, so system prompts are folded into the first user turn "
             "(system text, a blank line, the user's text) as Gemma's own template does")
