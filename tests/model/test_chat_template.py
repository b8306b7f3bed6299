"""The chat template's facts live in one ChatTemplate built when the tokenizer loads and passed to
whoever renders, tokenizes, generates or parses replies; nothing is cached on the tokenizer object."""

import pytest

from sftflow.errors import SftflowError
from sftflow.model.chat import render, tokenize_record
from sftflow.model.chat_template import ChatTemplate
from sftflow.model.load import load_chat

ROW = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"}]}


def test_load_chat_gives_the_template_facts_and_leaves_the_tokenizer_bare(tiny_model_dir):
    chat = load_chat(str(tiny_model_dir))
    tok = chat.tokenizer
    before = set(vars(tok))
    t = tokenize_record(chat, ROW)
    render(chat, ROW["messages"][:-1], add_generation_prompt=True)
    assert any(t.assistant_masks)
    # the facts, as the tiny model's ChatML template has them (model/template.py)
    assert chat.end_of_turn == "<|im_end|>" and chat.reply_enders == ["<|im_end|>"]
    assert chat.stop_token_ids == [tok.convert_tokens_to_ids("<|im_end|>")] == [tok.eos_token_id]
    assert (chat.refuses_system, chat.reasoning_style, chat.harmony) == (False, "inline", False)
    assert chat.tool_support is None and chat.call_syntax.name == "hermes"
    assert chat.added_token_ids == []  # the tiny model has its chat tokens already
    # no sftflow value rides on the tokenizer object (they were `_sftflow_*` / `sftflow_added_token_ids`)
    assert set(vars(tok)) == before and not [a for a in vars(tok) if "sftflow" in a]


def test_a_base_model_without_a_template_gets_chatml_and_its_added_tokens_are_named(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(tiny_model_dir)
    raw.chat_template = None
    raw.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    chat = load_chat(str(tmp_path))
    assert chat.end_of_turn == "<|im_end|>" and chat.tokenizer.chat_template
    assert chat.added_token_ids == list(range(len(raw), len(chat.tokenizer)))


def test_facts_are_not_read_off_a_template_that_changed(tiny_model_dir):
    chat = load_chat(str(tiny_model_dir))
    chat.tokenizer.chat_template = chat.tokenizer.chat_template.replace("<|im_end|>", "<|im_end|>\n")
    with pytest.raises(SftflowError, match="chat template changed after its facts were read"):
        _ = chat.end_of_turn
    assert ChatTemplate(chat.tokenizer).end_of_turn == "<|im_end|>"  # a new ChatTemplate reads it anew
