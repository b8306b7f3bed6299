"""Pad and end-of-turn tokens, taken from what the tokenizer already has.

- pad: a pad token never carries loss nor attention, so it never needs training; instead of
  adding one (a new embedding row, a resize, and for a tied head a PEFT wrapper that breaks:
  issue 19) an existing unused token is chosen: the model's own pad, a reserved token meant
  for it (Llama 3's `<|finetune_right_pad_id|>`, `<|reserved_special_token_N|>`, Gemma's
  `<unusedN>`, Mistral's `<SPECIAL_N>`, Phi-3's `<|placeholderN|>`), or unk. Only a tokenizer
  with none of these gets a new `<|pad|>` row, which stays untrained.
  A pad the vocabulary names as one (DeepSeek's `<｜▁pad▁｜>`) counts as the model's own.
- end of turn: the special token the chat template puts right after an assistant answer
  (`<|eot_id|>`, `<|im_end|>`, `<end_of_turn>`, `</s>`, `<|end|>`), read per turn off the
  rendering of the whole conversation (`closing_token`): gpt-oss's harmony ends earlier answers
  with `<|end|>` and only the last with `<|return|>` (`<|call|>` for a tool call). Generation
  stops on the tokens that end a reply (`stop_token_ids`: those after a last answer and after a
  last tool call, and eos), even where the tokenizer's eos is another token (Gemma 2: `<eos>`;
  Phi-3: `<|endoftext|>`), and never on `<|end|>`, after which harmony goes on.
"""

from __future__ import annotations

import re

from sftflow.errors import SftflowError

# Named pad tokens, most specific first.
PAD_NAMES = ("<|finetune_right_pad_id|>", "<|finetune_right_pad|>", "<|pad|>", "<pad>", "[PAD]", "<|padding|>")
RESERVED = re.compile(r"<\|reserved_special_token_\d+\|>|<unused\d+>|<\|placeholder\d+\|>|<SPECIAL_\d+>"
                      r"|<\|dummy_\d+\|>|<\|reserved_\d+\|>|<\|extra_\d+\|>")
PAD_WORD = re.compile(r"(?<![a-z])pad(?![a-z])", re.IGNORECASE)  # <｜▁pad▁｜>, <|pad_0|>; not "padding" names
SENTINEL = "\ue000"  # a private-use character: never in real text, so where it lands is where content goes


def chat_roles(system: bool = False) -> list[dict]:
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": SENTINEL}]
    return ([{"role": "system", "content": "S"}] if system else []) + msgs


def special_texts(tok) -> list[str]:
    """The tokenizer's special tokens as text, longest first (so `<|end|>` is not read inside a longer one)."""
    texts = set(tok.all_special_tokens) | {t.content for t in tok.added_tokens_decoder.values() if t.special}
    return sorted((t for t in texts if t), key=len, reverse=True)


def closing_token(specials: list[str], text: str, end: int, limit: int | None = None) -> tuple[int, str] | None:
    """(position, token) of the first special token (of `specials`, longest first) that ends after `end` in
    `text` (the one that closes the turn whose content ends there; it may begin inside a changed region, like
    `<|call|>` after `<|end|>`'s shared `|>`), or None when there is none before `limit`."""
    best = None
    for s in specials:
        at = text.find(s, max(0, end - len(s) + 1), limit)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, s)
    return best


def _closer_after(tok, specials: list[str], chat: list[dict], tools: list[dict] | None = None,
                  marker: str = SENTINEL) -> str | None:
    kw = {"tools": tools} if tools else {}
    text = tok.apply_chat_template(chat, tokenize=False, **kw)
    found = closing_token(specials, text, text.rindex(marker) + len(marker))
    return found[1] if found else None


def find_end_of_turn(tok, specials: list[str]) -> str:
    """The special token the template renders right after a last assistant answer (the token a reply ends
    with). Asked once per tokenizer: `ChatTemplate.end_of_turn`."""
    token = _closer_after(tok, specials, chat_roles())
    if token is None:
        text = tok.apply_chat_template(chat_roles(), tokenize=False)
        after = text[text.index(SENTINEL) + 1:]
        raise SftflowError(
            f"the chat template puts no special token after an assistant answer (it renders {after[:40]!r}), so a "
            "tuned model could not learn where to stop; set model.chat_template to a template whose turns end with one"
        )
    return token


def find_reply_enders(tok, end_of_turn: str, specials: list[str]) -> list[str]:
    """The tokens that end a reply: after a last answer and after a last tool call (gpt-oss: `<|return|>` and
    `<|call|>`; most templates: one token for both). Not the token that closes earlier turns (`<|end|>`)."""
    enders = [end_of_turn]
    tool = {"type": "function", "function": {"name": "sftflow_probe", "description": "probe",
                                             "parameters": {"type": "object", "properties": {}}}}
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call00001", "type": "function", "function": {"name": "sftflow_probe", "arguments": {"q": "sftflowprobe"}}}]}
    try:
        closer = _closer_after(tok, specials, [{"role": "user", "content": "Hi"}, call], [tool], "sftflowprobe")
    except Exception:  # noqa: BLE001 - a template without tools: no tool-call ender
        closer = None
    if closer and closer not in enders and closer != tok.bos_token:
        enders.append(closer)
    return enders


def choose_pad(tok, reply_enders: list[str]) -> str | None:
    """An existing token to pad with (distinct from eos and the tokens that end a reply), or None when there
    is none."""
    avoid = {tok.eos_token, tok.bos_token, *reply_enders}
    if tok.pad_token is not None and tok.pad_token not in avoid:
        return tok.pad_token
    vocab = tok.get_vocab()
    for name in PAD_NAMES:
        if name in vocab and name not in avoid:
            return name
    named = [t.content for t in tok.added_tokens_decoder.values()  # a pad the vocabulary has under its own name
             if t.special and PAD_WORD.search(t.content) and t.content not in avoid]
    if named:
        return min(named, key=len)
    reserved = [t for t in (a.content for a in tok.added_tokens_decoder.values()) if RESERVED.fullmatch(t)]
    if reserved:
        return min(reserved, key=lambda t: (len(t), t))  # <|reserved_special_token_0|> before _10
    if tok.unk_token is not None and tok.unk_token not in avoid:
        return tok.unk_token
    return None
