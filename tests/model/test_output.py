"""Replies read back into content, reasoning and tool calls (model/output.py), for each family's syntax.

The expected calls are written out by hand from each family's documented format; the syntaxes
derived from the real templates are checked against the wrapping those templates are known to use.
"""

from __future__ import annotations

import pytest

from sftflow.example import ToolCall
from sftflow.model.chat_template import ChatTemplate
from sftflow.model.output import SYNTAXES, Reply, call_prefix, call_start, parse_reply
from tests.families import tokenizer_dir

OSLO = ToolCall("", "get_weather", '{"city": "Oslo"}')
TIME = ToolCall("", "get_time", '{"city": "Oslo", "tz": true}')


@pytest.mark.parametrize("family, text, want", [
    ("hermes", '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>', Reply("", None, (OSLO,))),
    ("hermes", 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
               '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo", "tz": true}}\n</tool_call>',
     Reply("Let me look.", None, (OSLO, TIME))),
    ("hermes", '<think>\nweather needs a call\n</think>\n\n<tool_call>\n{"name": "get_weather", '
               '"arguments": {"city": "Oslo"}}\n</tool_call>', Reply("", "weather needs a call", (OSLO,))),
    ("mistral", '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "a1b2c3d4e"}, '
                '{"name": "get_time", "arguments": {"city": "Oslo", "tz": true}}]',
     Reply("", None, (ToolCall("a1b2c3d4e", "get_weather", '{"city": "Oslo"}'), TIME))),
    # Mistral's [TOOL_CALLS] is a special token: gone from text decoded with skip_special_tokens
    ("mistral", '[{"name": "get_weather", "arguments": {"city": "Oslo"}}]', Reply("", None, (OSLO,))),
    ("llama3_json", '{"name": "get_weather", "parameters": {"city": "Oslo"}}', Reply("", None, (OSLO,))),
    ("llama3_json", '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}', Reply("", None, (OSLO,))),
    ("llama3_json", '{"name": "get_weather", "parameters": {"city": "Oslo"}}; '
                    '{"name": "get_time", "parameters": {"city": "Oslo", "tz": true}}', Reply("", None, (OSLO, TIME))),
    ("json", '{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}', Reply("", None, (OSLO,))),
    # plain answers, a JSON answer that is no call, a call cut off by max_tokens: text, no calls
    ("hermes", "It is sunny in Oslo.", Reply("It is sunny in Oslo.")),
    ("json", '{"city": "Oslo"}', Reply('{"city": "Oslo"}')),
    ("hermes", '<tool_call>{"name": "get_weather", "argu', Reply('<tool_call>{"name": "get_weather", "argu')),
])
def test_each_family_syntax_reads_its_calls(family, text, want):
    assert parse_reply(text, SYNTAXES[family]) == want
    assert parse_reply(text) == want  # no syntax known: every family is tried


def test_without_tools_nothing_is_read_as_a_call():
    text = '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    assert parse_reply(text, SYNTAXES["hermes"], tools=False) == Reply(text)


def test_a_reply_that_only_calls_reads_as_the_reference_answer_text():
    reply = parse_reply('<tool_call>{"name": "get_weather", "arguments": {"city":"Oslo"}}</tool_call>')
    assert reply.answer_text == '[{"name": "get_weather", "arguments": {"city": "Oslo"}}]'


def test_streaming_holds_back_from_where_a_call_may_begin():
    hermes = SYNTAXES["hermes"]
    assert call_start("It is sunny.", hermes) is None
    assert call_start("Let me check. <tool", hermes) == len("Let me check. ")
    assert call_start('Let me check. <tool_call>{"na', hermes) == len("Let me check. ")
    assert call_start('  [{"name"', SYNTAXES["mistral"]) == 0  # its opener decoded away


@pytest.mark.parametrize("family, name, head", [
    ("qwen3", "hermes", '<tool_call>\n{"name": "get_weather", "arguments": '),
    ("mistral", "mistral", '[TOOL_CALLS][{"name": "get_weather", "arguments": '),
    ("llama3.2", "llama3_json", '{"name": "get_weather", "parameters": '),
])
def test_the_syntax_is_read_off_the_real_template(families_root, family, name, head):
    """Rendering a known call through the family's own template gives its wrapping, and the text a
    forced call to `get_weather` is prefilled with."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir(family, families_root))
    syntax = ChatTemplate(tok).call_syntax
    assert syntax.name == name
    assert call_prefix(syntax, "get_weather") == head
    # what the template renders for a call is read back as that call
    call = {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template([{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "", "tool_calls": [call]}], tokenize=False)
    rendered = full[len(prompt):]
    for special in tok.all_special_tokens:
        rendered = rendered.split(special)[0] if special in ("<|im_end|>", "</s>", "<|eot_id|>") else rendered
    assert parse_reply(rendered, syntax).tool_calls[0].name == "get_weather"
    assert parse_reply(rendered, syntax).tool_calls[0].arguments == '{"city": "Oslo"}'


def test_a_template_without_tool_calls_has_no_syntax(families_root):
    from transformers import AutoTokenizer

    assert ChatTemplate(AutoTokenizer.from_pretrained(tokenizer_dir("gemma3", families_root))).call_syntax is None


# Mistral Small 3.1+ / Magistral / Devstral write each call as [TOOL_CALLS]name[ARGS]{arguments}; their
# chat templates render a call that way (this is the part of the template that writes calls).
MISTRAL_ARGS_TEMPLATE = (
    "{%- if tools %}{{ '[AVAILABLE_TOOLS]' + (tools | tojson) + '[/AVAILABLE_TOOLS]' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{ '[INST]' + message['content'] + '[/INST]' }}"
    "{%- elif message['role'] == 'tool' %}{{ '[TOOL_RESULTS]' + message['content'] + '[/TOOL_RESULTS]' }}"
    "{%- elif message['role'] == 'assistant' %}{{ message['content'] or '' }}"
    "{%- for tool in message['tool_calls'] or [] %}{%- set arguments = tool['function']['arguments'] %}"
    "{%- if arguments is not string %}{%- set arguments = arguments | tojson %}{%- endif %}"
    "{{ '[TOOL_CALLS]' + tool['function']['name'] + '[ARGS]' + arguments }}{%- endfor %}{{ eos_token }}"
    "{%- endif %}{%- endfor %}")


@pytest.mark.parametrize("text, want", [
    ('[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}', Reply("", None, (OSLO,))),
    ('Let me see.[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}[TOOL_CALLS]get_time[ARGS]{"city": "Oslo", "tz": true}',
     Reply("Let me see.", None, (OSLO, TIME))),
    ('[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Oslo"}',
     Reply("", None, (ToolCall("a1b2c3d4e", "get_weather", '{"city": "Oslo"}'),))),
    ('get_weather{"city": "Oslo"}', Reply("", None, (OSLO,))),  # [TOOL_CALLS] and [ARGS] decoded away
    ('Use {"city": "Oslo"} as input.', Reply('Use {"city": "Oslo"} as input.')),  # JSON in an answer: text
    ('[TOOL_CALLS]get_weather[ARGS]{"city": "Os', Reply('[TOOL_CALLS]get_weather[ARGS]{"city": "Os')),  # cut off
])
def test_mistral_name_args_calls(text, want):
    assert parse_reply(text, SYNTAXES["mistral_args"]) == want
    if "[TOOL_CALLS]" in text and want.tool_calls:
        assert parse_reply(text) == want  # no syntax known: found among the families


def test_the_name_args_syntax_is_read_off_its_template(families_root):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir("mistral", families_root))
    tok.chat_template = MISTRAL_ARGS_TEMPLATE
    syntax = ChatTemplate(tok).call_syntax
    assert syntax.name == "mistral_args"
    assert call_prefix(syntax, "get_weather") == "[TOOL_CALLS]get_weather[ARGS]"
    assert call_start("get_wea", syntax) == 0 and call_start("It is sunny.", syntax) is None


# gpt-oss (harmony): a call is a message addressed to the function, its text the arguments; model/harmony.py
# reads the channels and writes each call after the final text, where the harmony syntax reads it.
@pytest.mark.parametrize("text, want", [
    ('to=functions.get_weather<|message|>{"city": "Oslo"}<|call|>', Reply("", None, (OSLO,))),
    ('Let me see.to=functions.get_weather<|message|>{"city": "Oslo"}<|call|>'
     'to=functions.get_time<|message|>{"city": "Oslo", "tz": true}<|call|>', Reply("Let me see.", None, (OSLO, TIME))),
    # a forced call: the template's header was the prefill, the model wrote the arguments
    (' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Oslo"}', Reply("", None, (OSLO,))),
    ('to=functions.get_weather<|message|>{"city": "Os', Reply('to=functions.get_weather<|message|>{"city": "Os')),
    ("It is sunny in Oslo.", Reply("It is sunny in Oslo.")),
])
def test_harmony_calls(text, want):
    assert parse_reply(text, SYNTAXES["harmony"]) == want
    assert parse_reply(text) == want  # no syntax known: found among the families


def test_a_gpt_oss_reply_reads_back_into_reasoning_and_the_call_its_template_wrote(families_root):
    """The oracle is the real gpt-oss template: the reply it renders for a turn with reasoning and a call,
    as token ids, is read back (reasoning.reply_parts, then parse_reply with the syntax read off the same
    template) into that reasoning and that call; a forced call is prefilled with the template's own header."""
    from transformers import AutoTokenizer

    from sftflow.model.reasoning import joined, reply_parts

    tok = AutoTokenizer.from_pretrained(tokenizer_dir("gptoss", families_root))
    chat = ChatTemplate(tok)
    assert chat.call_syntax.name == "harmony"
    call = {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    user = [{"role": "user", "content": "Weather in Oslo?"}]
    prompt = tok.apply_chat_template(user, tools=[WEATHER], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template([*user, {"role": "assistant", "content": "", "thinking": "Needs the weather tool.",
                                            "tool_calls": [call]}], tools=[WEATHER], tokenize=False)
    assert full.startswith(prompt)
    ids = tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
    reply = parse_reply(joined(*reply_parts(chat, ids, prompt)), chat.call_syntax)
    assert reply == Reply("", "Needs the weather tool.", (OSLO,))
    head = call_prefix(chat.call_syntax, "get_weather")
    assert head.strip() and full[len(prompt):].split("<|start|>assistant")[-1].startswith(head)


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
