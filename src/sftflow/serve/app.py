"""OpenAI-compatible serving of a fine-tuned run: the API routes.

    sftflow serve runs/quickstart --port 8000
    curl -s localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
         -d '{"model": "quickstart", "messages": [{"role": "user", "content": "my laptop is broken"}]}'

The model is the run's own: base + adapter (merged for LoRA) or the full model train saved,
loaded by `load_tuned`, the same code path eval uses. Prompts are rendered with the run's
tokenizer and chat template, the exact one training used; greedy output (temperature 0)
equals what `sftflow eval` generated for the same prompt (tested).

Requests that arrive together are decoded as one left-padded batch (dynamic batching: the
worker waits `batch_wait_ms` after the first request for more, up to `max_batch`), each row
with its own temperature, top_p, seed, stop strings and max_tokens; rows that finish are
dropped from the batch so long answers do not make short ones wait. Throughput therefore
grows with concurrency (bench/serve_load.py measures it). Errors use OpenAI's JSON shape.

Tool calling: `tools` (and earlier `tool_calls` and `role: tool` results) are rendered by the
template; the reply is read by model/output.py in the family's own call syntax into
`message.tool_calls` / streamed `delta.tool_calls` (sent whole once the call is complete),
`finish_reason: "tool_calls"`. `tool_choice` "none" renders no tools; "required" or a named
function prefills the start of a call (a 400 where the template shows no call syntax).

The pieces live apart: the wire format (requests, errors, response bodies) in serve/schemas.py,
finding and loading the run in runs.py, decoding in model/engine.py,
sockets, timeouts, body limits and the key check in web.py (shared with `sftflow review`),
the terminal chat in terminal_chat.py.
"""

import asyncio
import json
import time
import warnings
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from sftflow import web
from sftflow.errors import SftflowWarning
from sftflow.model.engine import Busy, Engine, GenRequest
from sftflow.model.system_prompt import preview
from sftflow.runs import Run, check_remote_code, load_run
from sftflow.serve.schemas import (
    ApiError,
    ApiRequest,
    ChatRequest,
    CompletionRequest,
    chat_shapes,
    completion_shapes,
    json_object,
    openai_tool_calls,
    stop_sequences,
    validation_message,
)


@dataclass
class Limits:
    max_request_bytes: int = 1_000_000
    max_tokens: int = 1024  # the most one request may ask for
    default_max_tokens: int = 256  # when a request does not say
    read_timeout_s: float = 30.0  # to receive a whole request body (slow clients get 408)


@dataclass
class _Api:
    """What the routes share: the engine, the model's name and context, this server's limits."""

    engine: Engine
    model_id: str
    api_key: str | None
    limits: Limits
    system_prompt: str | None  # the training data's, added to chat requests without one
    context: int
    created: int

    def check_key(self, request) -> None:
        if self.api_key and not web.same_secret(web.bearer(request) or "", self.api_key):
            raise ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')",
                           type="authentication_error", code="invalid_api_key")

    async def read(self, request, schema: type[BaseModel]):
        """The request's JSON body, size- and time-limited, validated against `schema`."""
        from starlette.concurrency import run_in_threadpool

        kind = web.media_type(request)
        if kind != "application/json":  # also keeps browsers' simple cross-site POSTs (text/plain, forms) out
            raise ApiError(415, f"content-type must be application/json (got {kind[:60] or 'none'!r})",
                           code="unsupported_media_type")
        limit = self.limits.max_request_bytes
        try:
            body = await web.read_body(request, max_bytes=limit, timeout=self.limits.read_timeout_s,
                                       too_large=f"request body larger than {limit} bytes")
        except web.BodyError as err:
            raise ApiError(err.status, err.message, code=err.code) from err
        # Parsing and validating a big body takes a while (1 MB of small messages: ~0.4 s): off the event loop.
        return await run_in_threadpool(self.parse, body, schema)

    def parse(self, body: bytes, schema: type[BaseModel]):
        try:
            req = schema.model_validate(json_object(body))
        except ValidationError as err:
            message, param = validation_message(err)
            raise ApiError(400, message, param=param) from err
        if req.model != self.model_id:
            raise ApiError(404, f"model '{req.model}' does not exist; this server serves '{self.model_id}'",
                           param="model", code="model_not_found")
        return req

    def budget(self, requested: int | None, prompt_len: int) -> int:
        """The tokens this request may generate, within the model's context and this server's limit."""
        context, limits = self.context, self.limits
        if prompt_len >= context:
            raise ApiError(400, f"the prompt is {prompt_len} tokens; this model's context is {context}",
                           param="messages", code="context_length_exceeded")
        if requested is None:
            return min(limits.default_max_tokens, limits.max_tokens, context - prompt_len)
        if requested > limits.max_tokens:
            raise ApiError(400, f"'max_tokens': {requested} is above this server's limit of {limits.max_tokens}",
                           param="max_tokens")
        if prompt_len + requested > context:
            raise ApiError(400, f"prompt ({prompt_len} tokens) + max_tokens ({requested}) exceed this model's "
                           f"context of {context} tokens", param="max_tokens", code="context_length_exceeded")
        return requested

    def sampling(self, req: ApiRequest, prompt_ids: list[int], max_tokens: int | None, index: int = 0,
                 strip: bool = False) -> GenRequest:
        return GenRequest(prompt_ids=prompt_ids, max_tokens=self.budget(max_tokens, len(prompt_ids)), on_event=None,
                          temperature=req.temperature, top_p=req.top_p, stop=stop_sequences(req.stop),
                          seed=req.seed, strip=strip, index=index)

    def chat_prompt(self, req: ChatRequest) -> tuple[list[int], dict]:
        """The conversation rendered with the run's chat template and the request's tools, as token ids,
        and how to read the reply (`calls`, `syntax`, `prefix` of a GenRequest)."""
        from sftflow.model.chat import render
        from sftflow.model.system_prompt import with_system

        messages = []
        for m in req.messages:
            content = m.content if isinstance(m.content, str) else "".join(p.text for p in m.content or [])
            d: dict = {"role": "system" if m.role == "developer" else m.role, "content": content}
            if m.tool_calls:
                d["tool_calls"] = [c.model_dump() for c in m.tool_calls]
            if m.tool_call_id is not None:
                d["tool_call_id"] = m.tool_call_id
            if m.role == "tool" and m.name:
                d["name"] = m.name
            messages.append(d)
        messages = with_system(messages, self.system_prompt)
        tok = self.engine.tok
        tools, reading = req.tool_use(self.engine.chat)
        try:
            text = render(self.engine.chat, messages, add_generation_prompt=True, tools=tools)
        except Exception as err:  # the template rejects this conversation (e.g. role order), or tools
            raise ApiError(400, f"the chat template cannot render these messages: {err}", param="messages") from err
        return tok(text + reading["prefix"], add_special_tokens=False)["input_ids"], reading

    def model_card(self) -> dict:
        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "sftflow"}


def _submit(engine: Engine, reqs: list[GenRequest]) -> asyncio.Queue:
    """Queue `reqs` for decoding; their events, (index, kind, payload), arrive on the returned queue."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    for r in reqs:
        r.on_event = lambda kind, payload, i=r.index: loop.call_soon_threadsafe(events.put_nowait, (i, kind, payload))
    try:
        engine.submit(reqs)
    except Busy as err:
        raise ApiError(503, f"server is overloaded: {err}", type="server_error", code="overloaded") from err
    return events


async def _gather(reqs: list[GenRequest], events: asyncio.Queue):
    """The events until every row is done; a row still running when this stops (the client
    went away, or a row failed) is cancelled."""
    done: dict[int, dict] = {}
    try:
        while len(done) < len(reqs):
            i, kind, payload = await events.get()
            if kind == "error":
                raise ApiError(500, f"generation failed: {payload}", type="server_error")
            if kind == "done":
                done[i] = payload
            yield i, kind, payload
    finally:
        for r in reqs:
            if r.index not in done:
                r.cancelled = True


async def _respond(engine: Engine, reqs: list[GenRequest], req: ApiRequest, make_chunk, make_final):
    """One JSON answer when every row is done, or, with `stream`, server-sent events as text arrives."""
    from fastapi.responses import JSONResponse, StreamingResponse

    events = _submit(engine, reqs)
    if not req.stream:
        results = {}
        async for i, kind, payload in _gather(reqs, events):
            if kind == "done":
                results[i] = payload
        return JSONResponse(make_final([results[i] for i in range(len(reqs))]))
    include_usage = bool((req.stream_options or {}).get("include_usage"))
    return StreamingResponse(_sse(reqs, _gather(reqs, events), make_chunk, include_usage),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _sse(reqs: list[GenRequest], events, make_chunk, include_usage: bool):
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    try:
        for r in reqs:
            first = make_chunk(r.index, None, None, first=True)
            if first:
                yield f"data: {json.dumps(first)}\n\n"
        async for i, kind, payload in events:
            if kind == "delta":
                yield f"data: {json.dumps(make_chunk(i, payload, None))}\n\n"
            elif kind == "reasoning":
                yield f"data: {json.dumps(make_chunk(i, payload, None, kind='reasoning_content'))}\n\n"
            else:
                if payload.get("tool_calls"):  # read whole at the end (held back while streaming), sent at once
                    calls = openai_tool_calls(payload["tool_calls"], stream=True)
                    yield f"data: {json.dumps(make_chunk(i, calls, None, kind='tool_calls'))}\n\n"
                usage["prompt_tokens"] += payload["prompt_tokens"]
                usage["completion_tokens"] += payload["completion_tokens"]
                yield f"data: {json.dumps(make_chunk(i, None, payload['finish_reason']))}\n\n"
        if include_usage:
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            last = make_chunk(0, None, None)
            last["choices"], last["usage"] = [], usage
            yield f"data: {json.dumps(last)}\n\n"
    except ApiError as err:
        yield f"data: {json.dumps(err.body())}\n\n"
    yield "data: [DONE]\n\n"


def _add_error_handlers(app) -> None:
    """Every error in OpenAI's JSON shape: ours, the framework's (404, 405, validation) and any other."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(ApiError)
    async def _api_error(request, err: ApiError):
        headers = {"connection": "close"} if err.status in web.CLOSE_AFTER else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request, err: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        message = f"{request.method} {request.url.path}: {err.detail}"
        return JSONResponse(ApiError(err.status_code, message, code=code).body(), status_code=err.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, err: RequestValidationError):
        return JSONResponse(ApiError(400, str(err.errors()[0].get("msg"))).body(), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request, err: Exception):
        body = ApiError(500, f"internal error: {type(err).__name__}", type="server_error").body()
        return JSONResponse(body, status_code=500)


def create_app(engine: Engine, model_id: str, *, api_key: str | None = None, limits: Limits | None = None,
               system_prompt: str | None = None):
    """The FastAPI app: /v1/chat/completions, /v1/completions, /v1/models, /health. `system_prompt`
    (the training data's) is added to chat requests that have no system message."""
    from fastapi import FastAPI, Request
    from starlette.concurrency import run_in_threadpool

    tok, model = engine.tok, engine.model
    context = int(getattr(model.config, "max_position_embeddings", 0) or tok.model_max_length or 2048)
    api = _Api(engine, model_id, api_key, limits or Limits(), system_prompt, context, int(time.time()))
    app = FastAPI(title="sftflow serve", docs_url=None, redoc_url=None, openapi_url=None)
    _add_error_handlers(app)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_id, "queued": engine.queue.qsize(), **engine.stats}

    @app.get("/v1/models")
    async def models(request: Request):
        api.check_key(request)
        return {"object": "list", "data": [api.model_card()]}

    @app.get("/v1/models/{name:path}")
    async def model_info(name: str, request: Request):
        api.check_key(request)
        if name != model_id:
            raise ApiError(404, f"model '{name}' does not exist; this server serves '{model_id}'",
                           code="model_not_found")
        return api.model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        api.check_key(request)
        req = await api.read(request, ChatRequest)
        # a long conversation takes a while to tokenize
        prompt_ids, reading = await run_in_threadpool(api.chat_prompt, req)
        g = api.sampling(req, prompt_ids, req.max_completion_tokens or req.max_tokens, strip=True)
        g.reasoning = True
        g.calls, g.syntax, g.prefix = reading["calls"], reading["syntax"], reading["prefix"]
        return await _respond(engine, [g], req, *chat_shapes(model_id))

    @app.post("/v1/completions")
    async def completions(request: Request):
        api.check_key(request)
        req = await api.read(request, CompletionRequest)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts or len(prompts) > 32:
            raise ApiError(400, "'prompt': give one string or a list of 1 to 32 strings", param="prompt")
        gens = []
        for i, ids in enumerate(await run_in_threadpool(lambda: [tok(p)["input_ids"] for p in prompts])):
            if not ids:
                raise ApiError(400, "'prompt': empty prompt", param="prompt")
            gens.append(api.sampling(req, ids, req.max_tokens, index=i))
        return await _respond(engine, gens, req, *completion_shapes(model_id))

    return app


# ---------------------------------------------------------------- running a server


def serve(run: Run, *, host: str, port: int, api_key: str | None, limits: Limits, max_batch: int,
          batch_wait_ms: float, threads: int | None, trust_remote_code: bool = False, log=print) -> None:
    check_remote_code(run, trust_remote_code)  # before binding the port
    if host not in web.LOOPBACK:
        warnings.warn(f"serving on {host}: reachable from other machines"
                      + ("" if api_key else "; set --api-key (or SFTFLOW_API_KEY) to require a key"), SftflowWarning, stacklevel=2)
    sock = web.bind(host, port)
    t0 = time.time()
    model, chat = load_run(run, threads=threads, trust_remote_code=trust_remote_code)
    engine = Engine(model, chat, max_batch=max_batch, batch_wait_ms=batch_wait_ms).start()
    app = create_app(engine, run.name, api_key=api_key, limits=limits, system_prompt=run.system_prompt)
    if run.system_prompt:
        log(f"serve: requests without a system message get the training data's: {preview(run.system_prompt)} "
            "(--no-default-system turns this off)")
    url = web.url_of(sock)
    log(f"serve: {run.name} ({run.method}, {run.run_dir / 'model'}) loaded in {time.time() - t0:.1f}s")
    log(f"serve: {url}/v1 (model '{run.name}'{', API key required' if api_key else ''}); ctrl-C stops")
    try:
        web.uvicorn_server(app, sock).run(sockets=[sock])
    finally:
        engine.stop()
        sock.close()
