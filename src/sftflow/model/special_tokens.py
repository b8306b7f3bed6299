"""Pad and end-of-turn tokens, taken from what the tokenizer already has.

- pad: a pad token never carries loss nor attention, so it never needs training; instead of
  adding one (a new embedding row, a resize, and for a tied head a PEFT wrapper that breaks:
  issue 19) an existing unused token is chosen: the model's own pad, a reserved token meant
  for it (Llama 3's `<|finetune_right_pad_id|>`, `<|reserved_special_token_N|>`, Gemma's
  `<unusedN>`, Mistral's `<SPECIAL_N>`, Phi-3's `<|placeholderN|>`), or unk. Only a tokenizer
  with none of these gets a new `<|pad|>` row, which stays untrained.
- end of turn: the special token the chat template puts right after an assistant answer
  (`<|eot_id|>`, `<|im_end|>`, `<end_of_turn>`, `</s>`, `<|end|>`). Training teaches the model
  to emit it, so generation must stop on it even where the tokenizer's eos is another token
  (Gemma 2: `<eos>`; Phi-3: `<|endoftext|>`).
"""

from __future__ import annotations

import re

from sftflow.errors import SftflowError

# Named pad tokens, most specific first.
PAD_NAMES = ("<|finetune_right_pad_id|>", "<|finetune_right_pad|>", "<|pad|>", "<pad>", "[PAD]", "<|padding|>")
RESERVED = re.compile(r"<\|reserved_special_token_\d+\|>|<unused\d+>|<\|placeholder\d+\|>|<SPECIAL_\d+>"
                      r"|<\|dummy_\d+\|>|<\|reserved_\d+\|>|<\|extra_\d+\|>")
SENTINEL = "\ue000"  # a private-use character: never in real text, so where it lands is where content goes


def chat_roles(system: bool = False) -> list[dict]:
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": SENTINEL}]
    return ([{"role": "system", "content": "S"}] if system else []) + msgs


def end_of_turn(tok) -> str:
    """The special token the template renders right after an assistant answer."""
    cached = getattr(tok, "_sftflow_end_of_turn", None)  # (template, token): a new template is looked at anew
    if cached is not None and cached[0] == tok.chat_template:
        return cached[1]
    text = tok.apply_chat_template(chat_roles(), tokenize=False)
    after = text[text.index(SENTINEL) + 1:]
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
    for token_id in tok(after, add_special_tokens=False)["input_ids"]:
        if token_id in special:
            token = tok.convert_ids_to_tokens(token_id)
            tok._sftflow_end_of_turn = (tok.chat_template, token)
            return token
    raise SftflowError(
        f"the chat template puts no special token after an assistant answer (it renders {after[:40]!r}), so a "
        "tuned model could not learn where to stop; set model.chat_template to a template whose turns end with one"
    )


def stop_token_ids(tok) -> list[int]:
    """Generation stops on the template's end-of-turn token and on the tokenizer's eos."""
    ids = [tok.convert_tokens_to_ids(end_of_turn(tok))]
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    return ids


def choose_pad(tok) -> str | None:
    """An existing token to pad with (distinct from eos and end of turn), or None when there is none."""
    avoid = {tok.eos_token, tok.bos_token, end_of_turn(tok) if tok.chat_template else None}
    if tok.pad_token is not None and tok.pad_token not in avoid:
        return tok.pad_token
    vocab = tok.get_vocab()
    for name in PAD_NAMES:
        if name in vocab and name not in avoid:
            return name
    reserved = [t for t in (a.content for a in tok.added_tokens_decoder.values()) if RESERVED.fullmatch(t)]
    if reserved:
        return min(reserved, key=lambda t: (len(t), t))  # <|reserved_special_token_0|> before _10
    if tok.unk_token is not None and tok.unk_token not in avoid:
        return tok.unk_token
    return None
