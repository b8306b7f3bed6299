"""`prepare --show N`: what the model will actually see, with the trained tokens highlighted.

Renders prepared training examples through the run's chat template and tokenizer and marks
the tokens that carry loss (assistant answers and their end-of-turn token) in bold green;
everything else (system, user, template scaffolding) is dimmed. Without a terminal (a pipe,
CI logs) the trained text is put between [[ and ]] instead. The quickest way to catch
a wrong template or a loss mask that trains on the prompt.
"""

from __future__ import annotations

from itertools import islice

from rich.text import Text

from sftflow.config import Config
from sftflow.data_folder import TRAIN
from sftflow.example import Example
from sftflow.io import read_jsonl
from sftflow.model.chat import assistant_spans, tokenize_record

TRAINED = "bold green"
CONTEXT = "dim"


def highlight(chat, record: Example | dict) -> Text:
    """`chat`: the tokenizer's ChatTemplate. Tool calls are part of the assistant turns that make them (trained); tool results and the
    tool list are context."""
    ex = Example.of(record)
    if ex.is_text:  # plain-text rows: every token is trained on
        return Text(ex.text, style=TRAINED)
    full, _ = assistant_spans(chat, ex.messages, ex.template_tools())  # the exact text training tokenizes
    mask = tokenize_record(chat, ex).assistant_masks
    offsets = chat.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out, pos = Text(), 0
    for (start, end), trained in zip(offsets, mask, strict=True):
        if start > pos:
            out.append(full[pos:start], style=CONTEXT)
        out.append(full[max(start, pos):end], style=TRAINED if trained else CONTEXT)
        pos = max(pos, end)
    out.append(full[pos:], style=CONTEXT)
    return out


def bracketed(text: Text, open_: str = "[[", close: str = "]]") -> str:
    """The highlighted text readable without colour (a pipe, a log file): trained runs in brackets."""
    out, pos = [], 0
    for span in sorted((s for s in text.spans if s.style == TRAINED), key=lambda s: s.start):
        out += [text.plain[pos:span.start], open_, text.plain[span.start:span.end], close]
        pos = span.end
    out.append(text.plain[pos:])
    return "".join(out).replace(close + open_, "")


def show_examples(cfg: Config, n: int) -> list[tuple[str, Text]]:
    """(header, highlighted text) for the first n training examples."""
    from sftflow.model.load import load_chat

    template = str(cfg.path(cfg.model.chat_template)) if cfg.model.chat_template else None
    chat = load_chat(cfg.model_path(), chat_template=template, trust_remote_code=cfg.model.trust_remote_code,
                     template_date=cfg.model.template_date)
    shown = []
    for r in islice(read_jsonl(cfg.data_dir / TRAIN), n):
        t = tokenize_record(chat, r)
        src = r["source"]
        header = (f"── {r['id']}  {src['file']}:{src['line']} ({src['format']}, {src['origin']})  "
                  f"{len(t.input_ids)} tokens, {sum(t.assistant_masks)} trained")
        shown.append((header, highlight(chat, r)))
    return shown
