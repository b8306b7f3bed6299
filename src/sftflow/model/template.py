"""The one chat template that renders every example for training, evaluation and serving.

A model's own `chat_template` always wins; this ChatML-style default is used when a
tokenizer has none (base models, and the tiny model that sftflow builds itself).
"""

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
