"""Reasoning split, training system prompts and template errors: the pieces of issue 19 that need no
real model family (those are in test_families.py)."""

import pytest

from sftflow.errors import SftflowError
from sftflow.model.reasoning import drop_reasoning, split_reasoning
from sftflow.model.system_prompt import describe, system_prompts, with_system
from sftflow.model.system_role import fold_system


@pytest.mark.parametrize("text, want", [
    ("<think>\nWhy?\n</think>\n\nBecause.", ("Why?", "Because.")),
    ("<think>\n\n</think>\n\n{\"a\": 1}", ("", '{"a": 1}')),       # Qwen 3's empty block
    ("Reasoning first.\n</think>\n\nAnswer.", ("Reasoning first.", "Answer.")),  # prompt opened the block (R1)
    ("<think>\ncut off by max_tokens", ("cut off by max_tokens", "")),
    ("plain answer", (None, "plain answer")),
    ("an answer that mentions </think> after <think>", (None, "an answer that mentions </think> after <think>")),
])
def test_reasoning_is_split_from_the_answer(text, want):
    assert split_reasoning(text) == want


def test_drop_reasoning_keeps_other_messages():
    chat = [{"role": "user", "content": "<think>user text is left alone</think>"},
            {"role": "assistant", "content": "<think>\nx\n</think>\n\nAnswer."}]
    assert drop_reasoning(chat) == [chat[0], {"role": "assistant", "content": "Answer."}]


def _rec(system):
    return {"messages": ([{"role": "system", "content": system}] if system else []) +
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def test_several_system_prompts_give_no_default_and_all_are_counted():
    """Issue 28, item 7: never the most common of several prompts — the model saw others too."""
    info = system_prompts([_rec("A"), _rec("B"), _rec("A"), _rec(None), {"text": "plain"}])
    assert info["default"] is None and info["distinct"] == 2 and info["with_system_prompt"] == 3
    assert info["examples"] == 4 and info["prompts"] == [{"text": "A", "count": 2}, {"text": "B", "count": 1}]
    assert describe(info) == ("3 of 4 training examples have a system prompt (2 distinct; train_summary.json lists "
                              "them): no training system prompt is shared, so serve, chat and eval add none to "
                              "conversations without one; set data.system_prompt to name one")
    assert system_prompts([_rec("A"), _rec(None)])["default"] == "A"  # rows without one (a general mix) aside
    assert system_prompts([_rec(None)])["default"] is None and describe(system_prompts([_rec(None)])) is None
    user = [{"role": "user", "content": "q"}]
    assert with_system(user, "A") == [{"role": "system", "content": "A"}, *user]
    assert with_system([{"role": "system", "content": "mine"}, *user], "A")[0]["content"] == "mine"  # theirs wins


def test_a_shared_or_configured_system_prompt_is_the_default():
    shared = system_prompts([_rec("A"), _rec("A"), {"text": "plain"}])
    assert shared["default"] == "A" and describe(shared).startswith("2 of 2 training examples have a system prompt")
    assert system_prompts([_rec("A"), _rec("B")], configured="C")["default"] == "C"


def test_fold_system_into_the_first_user_turn():
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
    assert fold_system(chat) == [{"role": "user", "content": "Be brief.\n\nHi"}, *chat[2:]]
    assert fold_system(chat[1:]) == chat[1:]


def test_a_template_with_no_end_of_turn_token_is_a_clear_error(tiny_model_dir):
    from sftflow.model.chat import tokenize_chat
    from sftflow.model.chat_template import ChatTemplate
    from sftflow.model.load import load_chat

    tok = load_chat(str(tiny_model_dir)).tokenizer
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    template = ChatTemplate(tok)  # the facts of the template it now has
    with pytest.raises(SftflowError, match="no special token after an assistant answer"):
        tokenize_chat(template, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])


def test_serve_chat_and_eval_read_the_default_only_when_it_was_shared(tmp_path):
    """A run trained before issue 28 recorded the most common of several prompts as its default: ignored."""
    import json

    from sftflow.model.system_prompt import training_system_prompt

    def summary(info):
        (tmp_path / "train_summary.json").write_text(json.dumps({"system_prompt": info}))
        return training_system_prompt(tmp_path)

    assert summary({"default": "A", "examples": 3, "with_system_prompt": 3, "distinct": 2}) is None
    assert summary({"default": "A", "examples": 3, "with_system_prompt": 3, "distinct": 1}) == "A"
    assert summary(system_prompts([_rec("A"), _rec("B")], configured="C")) == "C"
    assert summary(system_prompts([_rec("A"), _rec("B")])) is None
