"""The OpenAI wire format `sftflow serve` speaks: the request bodies it accepts (pydantic models,
extra fields refused), the one-line message a bad one gets, the error body, and the response
bodies (chat.completion, text_completion and their stream chunks).

    ChatRequest.model_validate(json_object(body))   # or an ApiError(400, "unsupported parameter 'x'")

The nested models keep their leading underscore: pydantic names them in its messages
("Input should be a valid dictionary or instance of _Message"), which clients see.
"""

import json
import secrets
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Closed(BaseModel):
    """A request part that refuses fields it does not know (a typo is a 400 naming it, never ignored)."""

    model_config = ConfigDict(extra="forbid")


class ApiRequest(_Closed):
    """What both endpoints take: the model, sampling and streaming."""

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)  # what torch's generator takes
    stream: bool = False
    stream_options: dict | None = None
    n: int = 1
    user: str | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    @model_validator(mode="after")
    def _supported(self):
        # Accepted for client compatibility at their neutral values; anything else would be silently ignored.
        if self.n != 1:
            raise ValueError("'n': only n=1 is supported; send several requests instead")
        if self.presence_penalty or self.frequency_penalty:
            raise ValueError("'presence_penalty'/'frequency_penalty': not supported; leave them at 0")
        return self


class _TextPart(_Closed):
    type: Literal["text"]
    text: str


class _Function(_Closed):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict | None = None
    strict: bool | None = None


class _ToolSpec(_Closed):
    type: Literal["function"]
    function: _Function


class _CalledFunction(_Closed):
    name: str = Field(min_length=1)
    arguments: str


class _ToolCallIn(_Closed):
    id: str
    type: Literal["function"] = "function"
    function: _CalledFunction


class _Message(_Closed):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_TextPart] | None = None
    name: str | None = None
    tool_calls: list[_ToolCallIn] | None = None  # an assistant's earlier calls
    tool_call_id: str | None = None  # a tool result: the call it answers

    @model_validator(mode="after")
    def _shape(self):
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"'content': a {self.role} message needs content")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("'tool_call_id': a tool message answers a call: give the call's id")
        return self


class _NamedFunction(_Closed):
    name: str


class _NamedToolChoice(_Closed):
    type: Literal["function"]
    function: _NamedFunction


class ChatRequest(ApiRequest):
    messages: list[_Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[_ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | _NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None  # accepted; the model decides how many calls it writes

    def tool_use(self, chat) -> tuple[list[dict] | None, dict]:
        """The tools to render and how to read the reply. `tool_choice` "none" renders no tools; "auto"
        (the default with tools) lets the model decide; "required" or a named function prefills the reply
        with the start of a call in the model's own syntax (read off its template, `chat`: model/output.py)."""
        from sftflow.model.output import call_prefix

        off = {"calls": False, "syntax": None, "prefix": ""}
        choice = self.tool_choice
        if not self.tools:
            if choice not in (None, "none"):
                raise ApiError(400, "'tool_choice': needs 'tools'", param="tool_choice")
            return None, off
        if choice == "none":
            return None, off
        tools = [t.model_dump(exclude_none=True) for t in self.tools]
        syntax = chat.call_syntax
        prefix = ""
        if choice == "required" or isinstance(choice, _NamedToolChoice):
            name = choice.function.name if isinstance(choice, _NamedToolChoice) else None
            if name is not None and name not in {t.function.name for t in self.tools}:
                raise ApiError(400, f"'tool_choice': '{name}' is not one of the request's tools", param="tool_choice")
            prefix = call_prefix(syntax, name)
            if not prefix:
                raise ApiError(400, f"'tool_choice': {json.dumps(choice if isinstance(choice, str) else choice.model_dump())}"
                               " cannot be honoured: this model's chat template shows no tool-call syntax to start "
                               "a call with; use \"auto\"", param="tool_choice")
        return tools, {"calls": True, "syntax": syntax, "prefix": prefix}


class CompletionRequest(ApiRequest):
    prompt: str | list[str]


def validation_message(err: ValidationError) -> tuple[str, str]:
    """pydantic's first error as OpenAI words it: one line, and the parameter it is about."""
    e = err.errors()[0]
    param = ".".join(str(p) for p in e["loc"])
    if e["type"] == "extra_forbidden":
        return f"unsupported parameter '{param}'", param
    if e["type"] == "missing":
        return f"missing required parameter '{param}'", param
    if e["type"] == "value_error":
        return e["msg"].removeprefix("Value error, "), param or None
    got = e.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {json.dumps(got)[:60]})"
    return f"'{param}': {e['msg']}{shown}", param


def stop_sequences(stop) -> list[str]:
    """The request's `stop` as a list of at most 4 non-empty strings."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > 4:
        raise ApiError(400, "'stop': at most 4 stop sequences", param="stop")
    if any(not s for s in stops):
        raise ApiError(400, "'stop': stop sequences must not be empty", param="stop")
    return stops


def json_object(body: bytes) -> dict:
    """The body as a JSON object of valid text, or a 400 saying what is wrong with it."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"request body is not valid JSON ({err})") from err
    except RecursionError as err:
        raise ApiError(400, "request body is not valid JSON (nested too deeply)") from err
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    try:  # "\ud800" is valid JSON but text no tokenizer can encode
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise ApiError(400, "request body has a lone surrogate escape (like \"\\ud800\"): not valid text") from err
    return data


def _usage(results: list[dict]) -> dict:
    p = sum(r["prompt_tokens"] for r in results)
    c = sum(r["completion_tokens"] for r in results)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def chat_shapes(model_id: str):
    """chat.completion.chunk and chat.completion bodies for one request."""
    rid, now = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())

    def chunk(i, delta, finish, first=False, kind="content"):
        d = {"role": "assistant", "content": ""} if first else ({kind: delta} if delta else {})
        return {"id": rid, "object": "chat.completion.chunk", "created": now, "model": model_id,
                "choices": [{"index": i, "delta": d, "finish_reason": finish, "logprobs": None}]}

    def final(results):
        r = results[0]
        message = {"role": "assistant", "content": r["text"]}
        if r.get("tool_calls"):
            message["content"] = r["text"] or None
            message["tool_calls"] = openai_tool_calls(r["tool_calls"])
        if r.get("reasoning") is not None:  # the <think> block, apart (as vLLM's reasoning parsers return it)
            message["reasoning_content"] = r["reasoning"]
        return {"id": rid, "object": "chat.completion", "created": now, "model": model_id,
                "choices": [{"index": 0, "message": message, "finish_reason": r["finish_reason"], "logprobs": None}],
                "usage": _usage(results)}

    return chunk, final


def openai_tool_calls(calls, stream: bool = False) -> list[dict]:
    """OpenAI's tool_calls: ids like call_…, arguments as JSON text; streamed ones carry their index."""
    out = []
    for k, c in enumerate(calls):
        d = {"id": f"call_{secrets.token_hex(12)}", "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
        out.append({"index": k, **d} if stream else d)
    return out


def completion_shapes(model_id: str):
    """text_completion bodies (chunk and final) for one request."""
    rid, now = f"cmpl-{secrets.token_hex(12)}", int(time.time())

    def chunk(i, delta, finish, first=False):
        if first:
            return None
        return {"id": rid, "object": "text_completion", "created": now, "model": model_id,
                "choices": [{"index": i, "text": delta or "", "finish_reason": finish, "logprobs": None}]}

    def final(results):
        return {"id": rid, "object": "text_completion", "created": now, "model": model_id,
                "choices": [{"index": i, "text": r["text"], "finish_reason": r["finish_reason"], "logprobs": None}
                            for i, r in enumerate(results)],
                "usage": _usage(results)}

    return chunk, final
