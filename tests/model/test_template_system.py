"""The system prompt a chat template renders by itself (SmolLM2's, Qwen 2.5's), found by rendering."""

import pytest

from sftflow.model.template_system import template_default_system

SMOLLM2_LIKE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PLAIN_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
REFUSES_SYSTEM = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ raise_exception('no system role') }}"
    "{% endif %}{{ message['content'] }}{% endfor %}"
)


def tokenizer(template):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
                                  unk_token="[UNK]")
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("template, expected", [
    (SMOLLM2_LIKE, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
    (PLAIN_CHATML, None),
    (REFUSES_SYSTEM, None),
    (None, None),
])
def test_the_default_system_prompt_a_template_renders_by_itself(template, expected):
    assert template_default_system(tokenizer(template)) == expected
