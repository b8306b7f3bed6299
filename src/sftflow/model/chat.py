"""Render chats with the one template and build the loss mask from the rendered spans.

TRL's `assistant_only_loss` needs `{% generation %}` markers that most hub templates lack,
so sftflow computes the mask itself, for any template (`model/masks.py`): every assistant turn
is located in the rendering of the whole conversation, from the end of its header through its
end-of-turn token, and tokens are mapped to those spans through the fast tokenizer's offsets.
The last answer follows the prompt exactly as serving renders it, so training sees the tokens
a served model is given. A template that refuses a system role gets the system prompt folded
into the first user turn (`model/system_role.py`).

Reasoning goes to the template the way it reads it (`reasoning_style`, found by rendering a probe):
gpt-oss's harmony template takes a `thinking` key (its analysis channel), Qwen 3's a
`reasoning_content` key, most others a `<think>` block in front of the content. A template that
drops the reasoning even from the turn being trained (the DeepSeek-R1 distills', whose generation
prompt opens `<think>\n`) gets it written after that prompt, `</think>` and the answer following,
as the model generates it; `train.reasoning: template` refuses such rows instead, `drop` drops it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sftflow.errors import SftflowError
from sftflow.example import Example, Message, template_messages
from sftflow.model.masks import training_text
from sftflow.model.reasoning import CLOSE, OPEN, drop_reasoning, split_reasoning
from sftflow.model.system_role import fold_system


@dataclass
class TokenizedChat:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 where the token is trained on (assistant content + its end-of-turn token)
    truncated: bool = False
    full_length: int = 0  # tokens before truncation


_THOUGHT = "sftflowthought"


def reasoning_style(tokenizer) -> str:
    """How the chat template takes an assistant turn's reasoning: `thinking` or `reasoning_content` (that
    key), `inline` (a `<think>` block in front of the content), or `stripped` (it renders none of them in
    the last turn: the R1 distills'). Found by rendering a turn with a marked reasoning each way, once per
    tokenizer: `ChatTemplate.reasoning_style`."""
    probes = [("thinking", {"content": "ok", "thinking": _THOUGHT}),
              ("reasoning_content", {"content": "ok", "reasoning_content": _THOUGHT}),
              ("inline", {"content": f"{OPEN}\n{_THOUGHT}\n{CLOSE}\n\nok"})]
    style = "stripped"
    for name, turn in probes:
        try:
            text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", **turn}],
                                                 tokenize=False)
        except Exception:  # noqa: BLE001 - a template that refuses one way may take another
            continue
        if _THOUGHT in text:
            style = name
            break
    return style


def _typed(messages) -> list[Message]:
    return [m if isinstance(m, Message) else Message.from_dict(m) for m in messages]


def _reasoning_apart(messages: list[Message]) -> list[Message]:
    """Assistant turns with a leading `<think>` block in their content get it as their reasoning."""
    from dataclasses import replace

    out = []
    for m in messages:
        if m.role == "assistant" and m.reasoning is None:
            thought, answer = split_reasoning(m.content)
            if thought is not None:
                m = replace(m, content=answer, reasoning=thought)
        out.append(m)
    return out


def _template_chat(chat, messages, tools: list[dict] | None = None):
    """The messages as the template reads them (call arguments as objects, reasoning the way it takes it,
    system folded where refused) and the renderer `draw(messages, add_generation_prompt)`: the one call,
    with `tools=`, that renders a conversation for training, evaluation and serving alike. `chat` is the
    tokenizer's ChatTemplate (its facts)."""
    if tools and chat.tool_support:
        raise SftflowError(chat.tool_support)
    tokenizer = chat.tokenizer
    style = chat.reasoning_style
    if style != "inline":  # a key, or none for a template that drops it (the last turn's: `assistant_spans`)
        msgs = template_messages(_reasoning_apart(_typed(messages)), "none" if style == "stripped" else style)
    else:
        msgs = template_messages(messages)
    if chat.refuses_system:
        msgs = fold_system(msgs)
    kw = {"tools": tools} if tools else {}
    draw = lambda msgs, gen: tokenizer.apply_chat_template(msgs, tokenize=False,  # noqa: E731
                                                           add_generation_prompt=gen, **kw)
    return msgs, draw


def render(chat, messages: list, add_generation_prompt: bool = False, tools: list[dict] | None = None) -> str:
    """A conversation (typed messages or canonical dicts) rendered by the model's template (`chat`, its
    ChatTemplate), with its tools."""
    msgs, draw = _template_chat(chat, messages, tools)
    return draw(msgs, add_generation_prompt)


_PROBE_TOOL = {"type": "function", "function": {"name": "sftflow_probe_tool", "description": "probe",
                                                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}


def tool_support(tokenizer) -> str | None:
    """None when the chat template renders a tool list and an assistant's tool call; otherwise why not
    (a template that ignores `tools=` would drop them from training without a word). Asked once per
    tokenizer: `ChatTemplate.tool_support`."""
    call = {"id": "call00001", "type": "function", "function": {"name": "sftflow_probe_call", "arguments": {"q": "x"}}}
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call00001", "content": "sftflow_probe_result"}]
    try:
        text = tokenizer.apply_chat_template(chat, tools=[_PROBE_TOOL], tokenize=False)
        parts = {"sftflow_probe_tool": "tool list", "sftflow_probe_call": "tool call", "sftflow_probe_result": "tool result"}
        missing = [what for word, what in parts.items() if word not in text]
        problem = f"the chat template renders no {' and no '.join(missing)}" if missing else None
    except Exception as err:  # noqa: BLE001 - jinja2's TemplateError, or whatever the template raises
        problem = f"the chat template cannot render a tool call ({err})"
    if problem:
        problem += "; rows with tools need a template that supports them: set model.chat_template"
    return problem


def assistant_spans(chat, messages: list, tools: list[dict] | None = None,
                    reasoning: str = "keep") -> tuple[str, list[tuple[int, int]]]:
    """The text to train on and the character spans of every trained assistant turn in it (turns marked
    `train: false` are context only). `reasoning` is train.reasoning: a last turn's reasoning that the
    template drops is written after the prompt (`keep`) or refused (`template`)."""
    untrained = {k for k, m in enumerate(m for m in messages if _role(m) == "assistant") if not _trains(m)}
    msgs, draw = _template_chat(chat, messages, tools)
    thought = None
    if messages and _role(messages[-1]) == "assistant" and chat.reasoning_style == "stripped":
        last = _reasoning_apart(_typed(messages[-1:]))[0]
        thought = last.reasoning or None
        if thought and reasoning == "template":
            raise SftflowError("the chat template drops the reasoning of the answer it trains; set train.reasoning: "
                               "keep (train it after the generation prompt, as the model writes it) or drop")
    text, spans = training_text(chat, draw, msgs, untrained)
    if thought is None:
        return text, spans
    prompt_end = len(draw(msgs[:-1], True))  # the last span starts there: write the reasoning in front of it
    prompt = text[:prompt_end]
    if prompt.endswith(OPEN + "\n"):  # the generation prompt opened the block (R1 distills): the model goes on
        lead = f"{thought}\n{CLOSE}\n\n"
    elif prompt.endswith(OPEN):
        lead = f"\n{thought}\n{CLOSE}\n\n"
    else:
        lead = f"{OPEN}\n{thought}\n{CLOSE}\n\n"
    trained = untrained.isdisjoint({sum(1 for m in messages if _role(m) == "assistant") - 1})
    if trained:
        spans[-1] = (prompt_end, spans[-1][1] + len(lead))
    return prompt + lead + text[prompt_end:], spans


def _role(m) -> str:
    return m.role if isinstance(m, Message) else m["role"]


def _trains(m) -> bool:
    return m.train if isinstance(m, Message) else m.get("train", True) is not False


def tokenize_chat(chat, messages: list, max_length: int | None = None,
                  reasoning: bool | str = True, tools: list[dict] | None = None) -> TokenizedChat:
    """`chat` is the tokenizer's ChatTemplate. `reasoning` is train.reasoning: True / `keep`, False / `drop`
    (answers trained without their reasoning), or `template` (refuse a row whose trained reasoning the
    template drops)."""
    tokenizer = chat.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise SftflowError("sftflow needs a fast (Rust) tokenizer for answer-only loss masks; this model has a slow one")
    mode = {True: "keep", False: "drop"}.get(reasoning, reasoning)
    if mode == "drop":
        messages = drop_reasoning(_typed(messages))
    full, spans = assistant_spans(chat, messages, tools, mode)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = [0] * len(ids)
    k = 0
    for start, end in spans:  # spans and tokens are both in text order
        while k < len(ids) and offsets[k][0] < start:
            k += 1
        while k < len(ids) and offsets[k][0] < end:
            mask[k] = int(offsets[k][1] > offsets[k][0])
            k += 1
    full_length = len(ids)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, mask = ids[:max_length], mask[:max_length]
    return TokenizedChat(ids, mask, truncated, full_length)


def tokenize_text(tokenizer, text: str, max_length: int | None = None) -> TokenizedChat:
    """Plain-text rows (continued pre-training): every token is trained on, framed by bos/eos."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    ids.append(tokenizer.eos_token_id)
    full_length = len(ids)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids = ids[:max_length]
    return TokenizedChat(ids, [1] * len(ids), truncated, full_length)


def tokenize_record(chat, record: Example | dict, max_length: int | None = None,
                    reasoning: bool | str = True) -> TokenizedChat:
    """A row as training tokenizes it; `chat` is the tokenizer's ChatTemplate."""
    ex = Example.of(record)
    if ex.is_text:
        return tokenize_text(chat.tokenizer, ex.text, max_length)
    return tokenize_chat(chat, ex.messages, max_length, reasoning, ex.template_tools())


def prompt_messages(record: Example | dict) -> list[dict]:
    """Everything before the final assistant answer: what the model is asked at evaluation."""
    return [m.to_dict() for m in Example.of(record).prompt]
