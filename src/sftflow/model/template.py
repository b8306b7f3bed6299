"""The one chat template that renders every example for training, evaluation and serving.

A model's own `chat_template` always wins; this ChatML-style default is used when a
tokenizer has none (base models, and the tiny model that sftflow builds itself).

A template that writes today's date (gpt-oss's `Current date:`, Llama 3.2's `Today Date:`, through
transformers' `strftime_now`) would render the same conversation differently from day to day, so
train, eval, serve and the export would each see another prompt. `pin_date` gives it one fixed
date (`model.template_date`): a `strftime_now` macro in front of the template shadows the
function, and the tokenizer saved with the run carries it.
"""

import datetime as _dt
import json as _json

DEFAULT_TEMPLATE_DATE = "2025-01-01"
_PIN_MARK = "{#- sftflow: model.template_date "
_DATE_FORMATS = ("%Y-%m-%d", "%d %b %Y", "%d %B %Y", "%B %d, %Y", "%b %d, %Y", "%Y/%m/%d", "%m/%d/%Y", "%A, %B %d, %Y",
                 "%Y-%m-%d %H:%M:%S", "%Y")


def pinned_date(template: str | None) -> str | None:
    """The date a pinned template renders, None for a template that is not pinned."""
    if template and template.startswith(_PIN_MARK):
        return template[len(_PIN_MARK):].split(" ", 1)[0]
    return None


def pin_date(template: str | None, date: str) -> str | None:
    """The template rendering `date` wherever it asks for today's (unchanged when it never does, or is pinned)."""
    if not template or "strftime_now" not in template or pinned_date(template):
        return template
    day = _dt.datetime.strptime(date, "%Y-%m-%d")
    table = {f: day.strftime(f) for f in _DATE_FORMATS}
    return (f"{_PIN_MARK}{date} (fixed, so the rendering does not depend on the day) -#}}"
            f"{{%- macro strftime_now(format) -%}}{{{{- {_json.dumps(table)}.get(format, {_json.dumps(date)}) -}}}}"
            "{%- endmacro -%}" + template)

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|im_end|>"  # ends every turn, so a tuned model learns to stop after its answer
PAD_TOKEN = "<|pad|>"  # never equal to eos: padding must not teach the model to stop, nor hide real eos
TURN_START_TOKEN = "<|im_start|>"
SPECIAL_TOKENS = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, TURN_START_TOKEN]

# Tools (issue 28) the way Hermes/Qwen templates write them: the tool list in a system turn (after the
# conversation's own system prompt), each call as <tool_call>{"name", "arguments"}</tool_call> in the
# assistant's turn, results in a `tool` turn. A conversation without tools renders as it always did.
DEFAULT_CHAT_TEMPLATE = (
    "{%- if bos_token %}{{ bos_token }}{%- endif %}"
    "{%- if tools %}{{ '<|im_start|>system\n' }}"
    "{%- if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\n\n' }}{%- endif %}"
    "{{ 'Tools you may call:' }}{%- for tool in tools %}{{ '\n' + (tool | tojson) }}{%- endfor %}"
    "{{ '<|im_end|>' + '\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (tools and loop.first and message['role'] == 'system') %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
    "{%- if message['tool_calls'] is defined and message['tool_calls'] %}"
    "{%- for call in message['tool_calls'] %}"
    "{%- if message['content'] or not loop.first %}{{ '\n' }}{%- endif %}"
    "{{ '<tool_call>' + ({'name': call['function']['name'], 'arguments': call['function']['arguments']} | tojson)"
    " + '</tool_call>' }}"
    "{%- endfor %}{%- endif %}"
    "{{ '<|im_end|>' + '\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)
