"""Tool calling through `sftflow serve`, with the official `openai` client: `tools` and `tool_choice`
rendered through the template, the model's call text returned as `message.tool_calls` (streamed as
`delta.tool_calls`), a tool result sent back.

The model is the tiny one with its next tokens scripted: the reply it "writes" is a hand-written
Hermes call (the tiny template's syntax), so what the client must get back is known independently
of the parser. The prompt it was given is recorded, to check what the template rendered.
"""

from __future__ import annotations

import functools
import json

import openai
import pytest

from tests.support import live_server

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CALL_TEXT = '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'


@pytest.fixture(scope="module")
def scripted(tiny_model_dir):
    """The tiny model, its greedy choice overridden by `script["text"]`; `script["prompts"]` records
    every prompt it was given (decoded)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    eos = model.generation_config.eos_token_id
    eos = eos if isinstance(eos, int) else eos[0]
    script = {"text": "", "step": 0, "prompts": []}
    real = model.forward

    @functools.wraps(real)
    def forward(*args, **kwargs):
        out = real(*args, **kwargs)
        ids = kwargs.get("input_ids")
        if ids.shape[1] > 1:  # the prefill: a new prompt
            script["step"] = 0
            script["prompts"].append(tok.decode(ids[0]))
        wanted = tok(script["text"], add_special_tokens=False)["input_ids"] + [eos]
        next_id = wanted[min(script["step"], len(wanted) - 1)]
        script["step"] += 1
        out.logits[:, -1, :] = -1e9
        out.logits[:, -1, next_id] = 0.0
        return out

    model.forward = forward
    return model, tok, script


@pytest.fixture(scope="module")
def server(scripted):
    from sftflow.model.chat_template import ChatTemplate
    from sftflow.model.engine import Engine
    from sftflow.serve.app import Limits, create_app

    model, tok, script = scripted
    engine = Engine(model, ChatTemplate(tok), max_batch=1, batch_wait_ms=1).start()
    app = create_app(engine, "tiny", limits=Limits(max_tokens=96, default_max_tokens=96))
    try:
        with live_server(app) as url:
            yield {"client": openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60),
                   "script": script}
    finally:
        engine.stop()


def _ask(server, text: str, **kw):
    server["script"]["text"] = text
    messages = kw.pop("messages", [{"role": "user", "content": "Weather in Oslo?"}])
    return server["client"].chat.completions.create(model="tiny", messages=messages, temperature=0, **kw)


def test_a_call_comes_back_as_tool_calls(server):
    out = _ask(server, CALL_TEXT, tools=TOOLS)
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and len(call.id) > 10
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    # the tools were rendered by the template into the prompt
    assert '"name": "get_weather"' in server["script"]["prompts"][-1]


def test_text_beside_a_call_and_a_plain_answer(server):
    out = _ask(server, "Let me check.\n" + CALL_TEXT, tools=TOOLS)
    assert out.choices[0].message.content == "Let me check."
    assert [c.function.name for c in out.choices[0].message.tool_calls] == ["get_weather"]
    plain = _ask(server, "Hello there.", tools=TOOLS)
    assert plain.choices[0].message.content == "Hello there." and not plain.choices[0].message.tool_calls
    assert plain.choices[0].finish_reason == "stop"


def test_without_tools_or_with_tool_choice_none_call_text_stays_text(server):
    out = _ask(server, CALL_TEXT)
    assert out.choices[0].message.content == CALL_TEXT and not out.choices[0].message.tool_calls
    out = _ask(server, CALL_TEXT, tools=TOOLS, tool_choice="none")
    assert out.choices[0].message.content == CALL_TEXT and not out.choices[0].message.tool_calls
    assert "get_weather" not in server["script"]["prompts"][-1]  # "none": the tools are not shown either


def test_streamed_calls_arrive_as_delta_tool_calls(server):
    server["script"]["text"] = "Let me check.\n" + CALL_TEXT
    chunks = list(server["client"].chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=TOOLS, stream=True,
        temperature=0))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "Let me check."  # the call's text is never streamed as content
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].id.startswith("call_")
    assert calls[0].function.name == "get_weather" and json.loads(calls[0].function.arguments) == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_a_tool_result_sent_back_is_rendered_and_answered(server):
    first = _ask(server, CALL_TEXT, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    messages = [{"role": "user", "content": "Weather in Oslo?"},
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 12}'}]
    out = _ask(server, "It is 12 C in Oslo.", tools=TOOLS, messages=messages)
    assert out.choices[0].message.content == "It is 12 C in Oslo." and out.choices[0].finish_reason == "stop"
    prompt = server["script"]["prompts"][-1]
    assert CALL_TEXT in prompt  # the earlier call, in the template's own syntax
    assert '<|im_start|>tool\n{"temp_c": 12}<|im_end|>' in prompt  # and its result


def test_a_named_tool_choice_prefills_the_call(server):
    # the prompt ends with the start of the call; the model writes only the arguments
    out = _ask(server, '{"city": "Oslo"}}</tool_call>', tools=TOOLS,
               tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert server["script"]["prompts"][-1].endswith('<|im_start|>assistant\n<tool_call>{"name": "get_weather", '
                                                    '"arguments": ')
    (call,) = out.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    out = _ask(server, '{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>', tools=TOOLS,
               tool_choice="required")
    assert server["script"]["prompts"][-1].endswith("<|im_start|>assistant\n<tool_call>")
    assert out.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_tool_request_errors(server):
    client = server["client"]
    with pytest.raises(openai.BadRequestError, match="'tool_choice': 'book_flight' is not one of the request's tools"):
        _ask(server, "x", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "book_flight"}})
    with pytest.raises(openai.BadRequestError, match="'tool_choice': needs 'tools'"):
        _ask(server, "x", tool_choice="required")
    with pytest.raises(openai.BadRequestError, match="a tool message answers a call"):
        client.chat.completions.create(model="tiny", messages=[{"role": "tool", "content": "{}"}])
