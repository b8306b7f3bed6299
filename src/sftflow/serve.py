"""OpenAI-compatible serving of a fine-tuned run, and a terminal chat with it.

    sftflow serve runs/quickstart --port 8000
    curl -s localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
         -d '{"model": "quickstart", "messages": [{"role": "user", "content": "my laptop is broken"}]}'
    sftflow chat runs/quickstart

The model is the run's own: base + adapter (merged for LoRA) or the full model train saved,
loaded by `load_tuned`, the same code path eval uses. Prompts are rendered with the run's
tokenizer and chat template, the exact one training used; greedy output (temperature 0)
equals what `sftflow eval` generated for the same prompt (tested).

Requests that arrive together are decoded as one left-padded batch (dynamic batching: the
worker waits `batch_wait_ms` after the first request for more, up to `max_batch`), each row
with its own temperature, top_p, seed, stop strings and max_tokens; rows that finish are
dropped from the batch so long answers do not make short ones wait. Throughput therefore
grows with concurrency (bench/serve_load.py measures it). Errors use OpenAI's JSON shape.
"""

import asyncio
import hmac
import json
import secrets
import socket
import time
import warnings
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sftflow.errors import SftflowError
from sftflow.model.engine import Busy, Engine, GenRequest
from sftflow.model.system_prompt import preview
from sftflow.runs import Run, check_remote_code, load_run

LOOPBACK = ("127.0.0.1", "localhost", "::1")


# ---------------------------------------------------------------- the OpenAI-shaped API


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


class _TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_TextPart]
    name: str | None = None


class ChatRequest(_Request):
    messages: list[_Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(_Request):
    prompt: str | list[str]


def _validation_message(err: ValidationError) -> tuple[str, str]:
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


def _stops(stop) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > 4:
        raise ApiError(400, "'stop': at most 4 stop sequences", param="stop")
    if any(not s for s in stops):
        raise ApiError(400, "'stop': stop sequences must not be empty", param="stop")
    return stops


@dataclass
class Limits:
    max_request_bytes: int = 1_000_000
    max_tokens: int = 1024  # the most one request may ask for
    default_max_tokens: int = 256  # when a request does not say
    read_timeout_s: float = 30.0  # to receive a whole request body (slow clients get 408)


def create_app(engine: Engine, model_id: str, *, api_key: str | None = None, limits: Limits | None = None,
               system_prompt: str | None = None):
    """The FastAPI app: /v1/chat/completions, /v1/completions, /v1/models, /health. `system_prompt`
    (the training data's) is added to chat requests that have no system message."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    limits = limits or Limits()
    tok, model = engine.tok, engine.model
    context = int(getattr(model.config, "max_position_embeddings", 0) or tok.model_max_length or 2048)
    created = int(time.time())
    app = FastAPI(title="sftflow serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(request, err: ApiError):
        # a request cut short leaves its body unread: close rather than read on for the next request
        headers = {"connection": "close"} if err.status in (408, 413, 415) else None
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

    def check_key(request: Request) -> None:
        if not api_key:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), api_key.encode()):
            raise ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')",
                           type="authentication_error", code="invalid_api_key")

    async def read_body(request: Request, schema: type[BaseModel]):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":  # also keeps browsers' simple cross-site POSTs (text/plain, forms) out
            raise ApiError(415, f"content-type must be application/json (got {kind[:60] or 'none'!r})",
                           code="unsupported_media_type")
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > limits.max_request_bytes):
            raise ApiError(413, f"request body larger than {limits.max_request_bytes} bytes", code="request_too_large")
        body = bytearray()
        try:
            async with asyncio.timeout(limits.read_timeout_s):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limits.max_request_bytes:
                        raise ApiError(413, f"request body larger than {limits.max_request_bytes} bytes",
                                       code="request_too_large")
        except TimeoutError as err:
            raise ApiError(408, f"request body not received within {limits.read_timeout_s:g}s",
                           code="request_timeout") from err
        except ClientDisconnect as err:
            raise ApiError(400, "the client closed the connection before sending the whole body") from err
        # Parsing and validating a big body takes a while (1 MB of small messages: ~0.4 s): off the event loop.
        return await run_in_threadpool(parse_body, bytes(body), schema)

    def parse_body(body: bytes, schema: type[BaseModel]):
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
        try:
            req = schema.model_validate(data)
        except ValidationError as err:
            message, param = _validation_message(err)
            raise ApiError(400, message, param=param) from err
        if req.model != model_id:
            raise ApiError(404, f"model '{req.model}' does not exist; this server serves '{model_id}'",
                           param="model", code="model_not_found")
        return req

    def budget(requested: int | None, prompt_len: int) -> int:
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

    async def run(reqs: list[GenRequest], stream: bool, make_chunk, make_final, include_usage: bool):
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        for r in reqs:
            r.on_event = lambda kind, payload, i=r.index: loop.call_soon_threadsafe(events.put_nowait,
                                                                                    (i, kind, payload))
        try:
            engine.submit(reqs)
        except Busy as err:
            raise ApiError(503, f"server is overloaded: {err}", type="server_error", code="overloaded") from err

        async def gather():
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
                for r in reqs:  # the client went away or we failed: stop decoding for it
                    if r.index not in done:
                        r.cancelled = True

        if not stream:
            results = {}
            async for i, kind, payload in gather():
                if kind == "done":
                    results[i] = payload
            return JSONResponse(make_final([results[i] for i in range(len(reqs))]))

        async def sse():
            usage = {"prompt_tokens": 0, "completion_tokens": 0}
            try:
                for r in reqs:
                    first = make_chunk(r.index, None, None, first=True)
                    if first:
                        yield f"data: {json.dumps(first)}\n\n"
                async for i, kind, payload in gather():
                    if kind == "delta":
                        yield f"data: {json.dumps(make_chunk(i, payload, None))}\n\n"
                    elif kind == "reasoning":
                        yield f"data: {json.dumps(make_chunk(i, payload, None, kind='reasoning_content'))}\n\n"
                    else:
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

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def usage_of(results: list[dict]) -> dict:
        p = sum(r["prompt_tokens"] for r in results)
        c = sum(r["completion_tokens"] for r in results)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def sampling(req: _Request, prompt_ids: list[int], max_tokens: int | None, index: int = 0, strip: bool = False):
        return GenRequest(prompt_ids=prompt_ids, max_tokens=budget(max_tokens, len(prompt_ids)), on_event=None,
                          temperature=req.temperature, top_p=req.top_p, stop=_stops(req.stop), seed=req.seed,
                          strip=strip, index=index)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_id, "queued": engine.queue.qsize(), **engine.stats}

    @app.get("/v1/models")
    async def models(request: Request):
        check_key(request)
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": created,
                                            "owned_by": "sftflow"}]}

    @app.get("/v1/models/{name:path}")
    async def model_info(name: str, request: Request):
        check_key(request)
        if name != model_id:
            raise ApiError(404, f"model '{name}' does not exist; this server serves '{model_id}'",
                           code="model_not_found")
        return {"id": model_id, "object": "model", "created": created, "owned_by": "sftflow"}

    def chat_prompt(req: ChatRequest) -> list[int]:
        """The conversation rendered with the run's chat template, as token ids."""
        from sftflow.model.chat import render
        from sftflow.model.system_prompt import with_system

        messages = []
        for m in req.messages:
            content = m.content if isinstance(m.content, str) else "".join(p.text for p in m.content)
            messages.append({"role": "system" if m.role == "developer" else m.role, "content": content})
        messages = with_system(messages, system_prompt)
        try:
            text = render(tok, messages, add_generation_prompt=True)
        except Exception as err:  # the template rejects this conversation (e.g. role order)
            raise ApiError(400, f"the chat template cannot render these messages: {err}", param="messages") from err
        return tok(text, add_special_tokens=False)["input_ids"]

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_key(request)
        req = await read_body(request, ChatRequest)
        prompt_ids = await run_in_threadpool(chat_prompt, req)  # a long conversation takes a while to tokenize
        g = sampling(req, prompt_ids, req.max_completion_tokens or req.max_tokens, strip=True)
        g.reasoning = True
        rid, now = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())

        def chunk(i, delta, finish, first=False, kind="content"):
            d = {"role": "assistant", "content": ""} if first else ({kind: delta} if delta else {})
            return {"id": rid, "object": "chat.completion.chunk", "created": now, "model": model_id,
                    "choices": [{"index": i, "delta": d, "finish_reason": finish, "logprobs": None}]}

        def final(results):
            r = results[0]
            message = {"role": "assistant", "content": r["text"]}
            if r.get("reasoning") is not None:  # the <think> block, apart (as vLLM's reasoning parsers return it)
                message["reasoning_content"] = r["reasoning"]
            return {"id": rid, "object": "chat.completion", "created": now, "model": model_id,
                    "choices": [{"index": 0, "message": message, "finish_reason": r["finish_reason"],
                                 "logprobs": None}],
                    "usage": usage_of(results)}

        include_usage = bool((req.stream_options or {}).get("include_usage"))
        return await run([g], req.stream, chunk, final, include_usage)

    @app.post("/v1/completions")
    async def completions(request: Request):
        check_key(request)
        req = await read_body(request, CompletionRequest)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts or len(prompts) > 32:
            raise ApiError(400, "'prompt': give one string or a list of 1 to 32 strings", param="prompt")
        gens = []
        for i, ids in enumerate(await run_in_threadpool(lambda: [tok(p)["input_ids"] for p in prompts])):
            if not ids:
                raise ApiError(400, "'prompt': empty prompt", param="prompt")
            gens.append(sampling(req, ids, req.max_tokens, index=i))
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
                    "usage": usage_of(results)}

        include_usage = bool((req.stream_options or {}).get("include_usage"))
        return await run(gens, req.stream, chunk, final, include_usage)

    return app


# ---------------------------------------------------------------- running a server


def bind(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn, so `--port 0` works and the printed URL is the real one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise SftflowError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port") from err
    sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


HEADER_TIMEOUT_S = 10.0  # a client gets this long to send a request's headers
MAX_CONNECTIONS = 512  # open connections and running requests at most; beyond it uvicorn answers 503


def _timed_protocol(header_timeout: float):
    """uvicorn's h11 protocol plus the header timeout uvicorn lacks: a connection that has not
    sent a complete request head `header_timeout` seconds after it opened (or after its last
    response) gets 408 and is closed, so slowloris-style clients cannot hold sockets forever.
    Each connection is a coroutine, so a slow one never blocks the others meanwhile."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        _head_timer = None
        _partial = False

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            self._partial = self._partial or self.conn.their_state is h11.IDLE
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._partial = False
            self._arm()

        def connection_lost(self, exc):
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timeout)

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY:
                self.transport.close()  # answered long ago, and the client is still sending that body
                return
            if self.conn.their_state is not h11.IDLE:
                return  # the head arrived: the app's body timeout takes over
            if self._partial:  # half a request: say why (an idle keep-alive connection just closes)
                body = b"request headers not received in time"
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                                     b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            self.transport.close()

    return TimedH11Protocol


def uvicorn_server(app, sock: socket.socket, *, log_level: str = "warning", header_timeout: float = HEADER_TIMEOUT_S):
    """A uvicorn server for `app` on an already bound socket: `.run(sockets=[sock])` to serve,
    `.should_exit = True` to stop (tests run it in a thread). No access log (requests carry
    keys and user text); slow clients are cut off by `header_timeout` and the apps' body timeouts."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off",
                                         timeout_graceful_shutdown=2, http=_timed_protocol(header_timeout),
                                         limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5))


def serve(run: Run, *, host: str, port: int, api_key: str | None, limits: Limits, max_batch: int,
          batch_wait_ms: float, threads: int | None, trust_remote_code: bool = False, log=print) -> None:
    check_remote_code(run, trust_remote_code)  # before binding the port
    if host not in LOOPBACK:
        warnings.warn(f"serving on {host}: reachable from other machines"
                      + ("" if api_key else "; set --api-key (or SFTFLOW_API_KEY) to require a key"), stacklevel=2)
    sock = bind(host, port)
    t0 = time.time()
    model, tok = load_run(run, threads=threads, trust_remote_code=trust_remote_code)
    engine = Engine(model, tok, max_batch=max_batch, batch_wait_ms=batch_wait_ms).start()
    app = create_app(engine, run.name, api_key=api_key, limits=limits, system_prompt=run.system_prompt)
    if run.system_prompt:
        log(f"serve: requests without a system message get the training data's: {preview(run.system_prompt)} "
            "(--no-default-system turns this off)")
    url = url_of(sock)
    log(f"serve: {run.name} ({run.method}, {run.run_dir / 'model'}) loaded in {time.time() - t0:.1f}s")
    log(f"serve: {url}/v1 (model '{run.name}'{', API key required' if api_key else ''}); ctrl-C stops")
    try:
        uvicorn_server(app, sock).run(sockets=[sock])
    finally:
        engine.stop()
        sock.close()
