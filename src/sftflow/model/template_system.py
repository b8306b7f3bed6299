"""The system prompt a chat template renders by itself when a conversation has none.

    python -c "from transformers import AutoTokenizer as T; from sftflow.model.template_system import \
template_default_system as d; print(d(T.from_pretrained('path/to/model')))"

Some templates insert a default system prompt (SmolLM2's: "You are a helpful AI assistant named
SmolLM, trained by Hugging Face"; Qwen 2.5's: "You are Qwen, created by Alibaba Cloud. You are a
helpful assistant."). sftflow renders every conversation with the one template, so a training row
without a system prompt is trained with that default, and eval, serve, chat and the GGUF export
render it the same way: the data card says so, with the text, so nobody is surprised by it.
"""

from __future__ import annotations

MARK = "\ue001"  # a private-use character: where a given system prompt lands in the rendering


def template_default_system(tok) -> str | None:
    """The text the template renders as the system prompt of a conversation without one, or None
    when it renders no system block (or has no template)."""
    if not getattr(tok, "chat_template", None):
        return None
    turn = [{"role": "user", "content": "Hi"}]
    try:
        bare = tok.apply_chat_template(turn, tokenize=False)
        given = tok.apply_chat_template([{"role": "system", "content": MARK}, *turn], tokenize=False)
    except Exception:  # a template that refuses a system role has no default system prompt either
        return None
    if given.count(MARK) != 1:
        return None
    before, after = given.split(MARK)
    if bare == before + after or not (bare.startswith(before) and bare.endswith(after)):
        return None
    return bare[len(before): len(bare) - len(after)] or None
