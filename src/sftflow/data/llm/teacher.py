"""A chat model used as a tool of the data stage: the teacher of `sftflow synth` and the judge
of `data.quality.judge`.

Two ways to reach one, behind the same `chat(messages) -> Reply`:

- `Endpoint`: any OpenAI-compatible API (`POST {base_url}/chat/completions`, e.g. OpenAI,
  vLLM, llama.cpp, or `sftflow serve`), through httpx, with the key read from an environment
  variable so it never sits in a config file;
- `LocalModel`: a Hugging Face model folder, decoded in this process by the batching engine
  of `sftflow serve` (same template handling, same sampling).

Failures are sorted by what helps: 429, 5xx, timeouts and dropped connections are retried
with exponential backoff (a Retry-After header wins); a request the server refuses (400)
fails only that item (`RequestRefused`); a wrong key, URL or model id stops the whole job
(`TeacherUnusable`, a one-line user error) because every later request would fail the same
way. A `Budget` shared by all threads caps requests, wall time and estimated cost: the
request that would exceed it is not sent (`BudgetSpent`).
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sftflow.errors import SftflowError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529}
MAX_BACKOFF = 60.0  # seconds, whatever Retry-After or doubling says


class TeacherUnusable(SftflowError):
    """Every request would fail the same way (bad key, URL or model): stop now."""


class TeacherFailed(Exception):
    """One request failed even after its retries (the item is tried again on the next run)."""


class RequestRefused(Exception):
    """The server refused this particular request (e.g. too long): the item is rejected."""


class BudgetSpent(Exception):
    """The request, time or cost budget is used up: stop cleanly, re-run to continue."""


@dataclass
class Reply:
    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_reported: bool = False


class Budget:
    """Requests, elapsed time and estimated cost, shared by every worker thread."""

    def __init__(self, max_requests: int | None = None, max_seconds: float | None = None,
                 max_cost: float | None = None, price_input: float | None = None, price_output: float | None = None):
        self.max_requests, self.max_seconds, self.max_cost = max_requests, max_seconds, max_cost
        self.price_input, self.price_output = price_input, price_output
        self.start = time.monotonic()
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.usage_missing = 0  # replies without a usage block: the cost is then a lower bound
        self._lock = threading.Lock()

    @property
    def priced(self) -> bool:
        return self.price_input is not None or self.price_output is not None

    @property
    def cost(self) -> float:
        return (self.prompt_tokens * (self.price_input or 0) + self.completion_tokens * (self.price_output or 0)) / 1e6

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left_seconds(self) -> float | None:
        return None if self.max_seconds is None else self.max_seconds - self.elapsed()

    def take(self) -> None:
        """Reserve one request, or raise BudgetSpent if any limit is reached."""
        with self._lock:
            if self.max_requests is not None and self.requests >= self.max_requests:
                raise BudgetSpent(f"request budget of {self.max_requests} spent")
            if self.max_seconds is not None and self.elapsed() >= self.max_seconds:
                raise BudgetSpent(f"time budget of {self.max_seconds:g}s spent")
            if self.max_cost is not None and self.priced and self.cost >= self.max_cost:
                raise BudgetSpent(f"cost budget of ${self.max_cost:g} spent (estimated ${self.cost:.4f})")
            self.requests += 1

    def add_usage(self, reply: Reply) -> None:
        with self._lock:
            self.prompt_tokens += reply.prompt_tokens
            self.completion_tokens += reply.completion_tokens
            self.usage_missing += not reply.usage_reported

    def summary(self) -> dict:
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "usage_missing": self.usage_missing,
                "cost": round(self.cost, 6) if self.priced else None, "seconds": round(self.elapsed(), 2)}

    def describe(self) -> str:
        """'1,234 tokens, ~$0.0031' for progress lines; the cost only where prices are configured."""
        text = f"{self.requests} requests, {self.prompt_tokens + self.completion_tokens:,} tokens"
        if self.priced:
            text += f", ~${self.cost:.4f}" + (" (some replies without usage)" if self.usage_missing else "")
        return text


def budget_for(cfg) -> Budget:
    """The budget an EndpointConfig asks for."""
    return Budget(cfg.max_requests, cfg.max_seconds, cfg.max_cost, cfg.price_input, cfg.price_output)


def _sleep(seconds: float, budget: Budget) -> None:
    left = budget.left_seconds()
    if left is not None and seconds >= left:
        raise BudgetSpent(f"time budget of {budget.max_seconds:g}s spent while waiting to retry")
    time.sleep(seconds)


def _retry_after(response) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _error_message(response) -> str:
    """The server's own words, from OpenAI's error shape or the raw body."""
    try:
        body = response.json()
        err = body.get("error") if isinstance(body, dict) else None
        message = (err.get("message") if isinstance(err, dict) else err) or body.get("detail") or body
    except (ValueError, AttributeError):
        message = response.text
    return " ".join(str(message).split())[:300]


class Endpoint:
    """An OpenAI-compatible chat completions API over HTTP."""

    def __init__(self, cfg, budget: Budget, label: str = "teacher"):
        import httpx

        self.cfg, self.budget, self.label = cfg, budget, label
        self.model_id = cfg.model
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.key_hint = f"${cfg.api_key_env} is {'set' if key else 'not set'}" if cfg.api_key_env else "no key sent"
        self.client = httpx.Client(base_url=cfg.base_url.rstrip("/"), headers=headers, timeout=cfg.timeout,
                                   limits=httpx.Limits(max_connections=cfg.concurrency + 2))

    def chat(self, messages: list[dict], *, seed: int | None = None, temperature: float | None = None) -> Reply:
        import httpx

        cfg = self.cfg
        body = {"model": cfg.model, "messages": messages, "max_tokens": cfg.max_tokens,
                "temperature": cfg.temperature if temperature is None else temperature}
        if seed is not None:
            body["seed"] = seed
        last, wait = "", None
        for attempt in range(cfg.retries + 1):
            if attempt:
                delay = min(MAX_BACKOFF, wait if wait is not None else cfg.backoff * 2 ** (attempt - 1))
                _sleep(delay * (1 + 0.1 * random.random()), self.budget)  # a little jitter: no thundering herd
            self.budget.take()
            wait = None
            try:
                response = self.client.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                last = f"no reply within {cfg.timeout:g}s"
                continue
            except httpx.TransportError as err:
                last = f"connection failed ({type(err).__name__}: {err})"
                continue
            status = response.status_code
            if status == 200:
                return self._reply(response)
            message = _error_message(response)
            if status in RETRY_STATUS:
                last, wait = f"HTTP {status}: {message}", _retry_after(response)
                continue
            where = f"{self.label} {cfg.base_url} (model {cfg.model!r})"
            if status in (401, 403):
                raise TeacherUnusable(f"{where}: HTTP {status}, not authorised ({message}); {self.key_hint}, "
                                      f"check {self.label}.api_key_env")
            if status == 404:
                raise TeacherUnusable(f"{where}: HTTP 404 ({message}); check {self.label}.base_url (it usually "
                                      f"ends in /v1) and {self.label}.model")
            raise RequestRefused(f"HTTP {status}: {message}")
        raise TeacherFailed(f"gave up after {cfg.retries + 1} attempts: {last}")

    def _reply(self, response) -> Reply:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise TeacherFailed(f"not an OpenAI chat completion reply ({type(err).__name__}: {err}): "
                                f"{response.text[:200]!r}") from err
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
        reply = Reply(text=text, finish_reason=str(choice.get("finish_reason") or "stop"),
                      prompt_tokens=int((usage or {}).get("prompt_tokens") or 0),
                      completion_tokens=int((usage or {}).get("completion_tokens") or 0),
                      usage_reported=usage is not None)
        self.budget.add_usage(reply)
        return reply

    def close(self) -> None:
        self.client.close()


class LocalModel:
    """A Hugging Face model folder decoded in this process (the engine `sftflow serve` uses)."""

    def __init__(self, cfg, budget: Budget, path: str, label: str = "teacher"):
        from sftflow.model.engine import Engine
        from sftflow.model.load import load_chat, load_model

        self.cfg, self.budget, self.label = cfg, budget, label
        self.model_id = cfg.model
        self.template = load_chat(path, padding_side="left")
        self.tok = self.template.tokenizer
        model = load_model(path, self.template, method="full")
        model.eval()
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        self.engine = Engine(model, self.template, max_batch=cfg.concurrency).start()

    def chat(self, messages: list[dict], *, seed: int | None = None, temperature: float | None = None) -> Reply:
        from sftflow.model.chat import render
        from sftflow.model.engine import GenRequest

        ids = self.tok(render(self.template, messages, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
        if len(ids) >= self.context:
            raise RequestRefused(f"the prompt is {len(ids)} tokens; {self.cfg.model}'s context is {self.context}")
        self.budget.take()
        done = threading.Event()
        result: dict = {}

        def on_event(kind, payload):
            if kind in ("done", "error"):
                result[kind] = payload
                done.set()

        req = GenRequest(prompt_ids=ids, max_tokens=min(self.cfg.max_tokens, self.context - len(ids)),
                         on_event=on_event, temperature=self.cfg.temperature if temperature is None else temperature,
                         seed=seed, strip=True)
        self.engine.submit([req])
        if not done.wait(self.cfg.timeout):
            req.cancelled = True
            raise TeacherFailed(f"no reply within {self.cfg.timeout:g}s")
        if "error" in result:
            raise TeacherFailed(str(result["error"]))
        r = result["done"]
        reply = Reply(r["text"], r["finish_reason"], r["prompt_tokens"], r["completion_tokens"], usage_reported=True)
        self.budget.add_usage(reply)
        return reply

    def close(self) -> None:
        self.engine.stop()


def open_model(cfg, budget: Budget, label: str = "teacher", root: Path | None = None) -> Endpoint | LocalModel:
    """An Endpoint when base_url is set, else the local model folder named by `model` (relative to root)."""
    if cfg.base_url:
        return Endpoint(cfg, budget, label)
    path = Path(cfg.model).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    if not path.is_dir():
        raise SftflowError(f"{label}.model {cfg.model!r}: without base_url this must be a local model folder, "
                           f"and {path} is not one; set {label}.base_url to use an API")
    return LocalModel(cfg, budget, str(path), label)
