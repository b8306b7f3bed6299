"""The one chat template that renders every example for training, evaluation and serving.

A model's own `chat_template` always wins; this ChatML-style default is used when a
tokenizer has none (base models, and the tiny model that sftflow builds itself).
"""

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|im_end|>"  # ends every turn, so a tuned model learns to stop after its answer
PAD_TOKEN = "<|pad|>"  # never equal to eos: padding must not teach the model to stop, nor hide real eos
TURN_START_TOKEN = "<|im_start|>"
SPECIAL_TOKENS = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, TURN_START_TOKEN]

DEFAULT_CHAT_TEMPLATE = (
    "{%- if bos_token %}{{ bos_token }}{%- endif %}"
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)
