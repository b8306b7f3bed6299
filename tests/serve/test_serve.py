"""`sftflow serve` and `sftflow chat` against a real run, through the official `openai` client.

The server runs in this process (uvicorn in a thread, on a free 127.0.0.1 port) with the
very objects `sftflow serve` builds; one test starts the real CLI in a subprocess.
"""

import importlib.util
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import openai  # the dev extra installs it: a missing one fails rather than skipping 15 tests
import pytest
import yaml

from tests.support import SFTFLOW, foreign_lines, live_server
from tests.tiny_run import make_run, shared_run

KEY = "test-key"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def one_thread():
    """Two shared CPU cores: one torch thread avoids OpenMP threads spinning against each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir, one_thread):
    return shared_run(tmp_path_factory, tiny_model_dir)


@pytest.fixture(scope="module")
def server(run_dir):
    from sftflow.model.engine import Engine
    from sftflow.runs import load_run, resolve_run
    from sftflow.serve.app import Limits, create_app

    run = resolve_run(run_dir)
    model, template = load_run(run)
    engine = Engine(model, template, max_batch=8, batch_wait_ms=10).start()
    app = create_app(engine, run.name, api_key=KEY,
                     limits=Limits(max_request_bytes=200_000, max_tokens=64, default_max_tokens=32))
    try:
        with live_server(app) as url:
            yield {"url": url, "model": run.name, "engine": engine}
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def predictions(run_dir):
    return [json.loads(line) for line in (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()]


def test_greedy_chat_equals_what_eval_generated(client, server, predictions, run_dir):
    """Same model, same chat template, same decoding: temperature 0 reproduces eval's outputs."""
    max_new = yaml.safe_load((run_dir / "config.yaml").read_text())["eval"]["max_new_tokens"]
    assert len(predictions) >= 5
    for p in predictions[:5]:
        r = client.chat.completions.create(model=server["model"], messages=p["prompt"], temperature=0,
                                           max_tokens=max_new)
        assert r.choices[0].message.content == p["tuned"], p["id"]
        assert r.choices[0].message.role == "assistant"
        assert r.choices[0].finish_reason in ("stop", "length")
        assert r.usage.prompt_tokens > 10 and 0 < r.usage.completion_tokens <= max_new
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_a_request_without_the_system_prompt_gets_the_training_one(server, predictions, run_dir):
    """Training = serving: eval's prompts carry the training system prompt; a client that sends only
    the user's message gets the same answer, because serve adds the training default."""
    from fastapi.testclient import TestClient

    from sftflow.serve.app import create_app

    max_new = yaml.safe_load((run_dir / "config.yaml").read_text())["eval"]["max_new_tokens"]
    system = predictions[0]["prompt"][0]
    assert system["role"] == "system"
    with_default = TestClient(create_app(server["engine"], server["model"], system_prompt=system["content"]))
    without = TestClient(create_app(server["engine"], server["model"]))
    changed = 0
    for p in predictions[:4]:
        body = {"model": server["model"], "messages": p["prompt"][1:], "temperature": 0, "max_tokens": max_new}
        assert with_default.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"] \
            == p["tuned"], p["id"]
        changed += without.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"] \
            != p["tuned"]
    assert changed, "the system prompt made no difference: this test could not fail"


def test_streaming_matches_non_streaming(client, server, predictions):
    messages = predictions[2]["prompt"]
    full = client.chat.completions.create(model=server["model"], messages=messages, temperature=0, max_tokens=24)
    chunks = list(client.chat.completions.create(model=server["model"], messages=messages, temperature=0,
                                                 max_tokens=24, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [full.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2  # really streamed


def test_sampling_parameters_are_honoured(client, server):
    model = server["model"]
    msgs = [{"role": "user", "content": "Tell me about animals."}]
    same = [client.chat.completions.create(model=model, messages=msgs, temperature=1.0, seed=7, max_tokens=16)
            .choices[0].message.content for _ in range(2)]
    assert same[0] == same[1]
    others = {client.chat.completions.create(model=model, messages=msgs, temperature=1.5, seed=s, max_tokens=16)
              .choices[0].message.content for s in range(6)}
    assert len(others) > 1  # the seed matters, so sampling really samples
    greedy = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=16)
    nucleus = client.chat.completions.create(model=model, messages=msgs, temperature=1.5, top_p=1e-6, seed=3,
                                             max_tokens=16)
    assert nucleus.choices[0].message.content == greedy.choices[0].message.content  # top_p keeps the top token only

    short = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=2)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2

    text = greedy.choices[0].message.content
    assert len(text) > 6, text
    stop = text[3:6]
    cut = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=16, stop=[stop, "zzz"])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.find(stop)].strip()
    streamed = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=16, stop=stop,
                                              stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == cut.choices[0].message.content


def test_completions_endpoint(client, server):
    r = client.completions.create(model=server["model"], prompt="The capital of France is", max_tokens=6,
                                  temperature=0)
    assert r.object == "text_completion" and r.choices[0].text and r.usage.completion_tokens <= 6
    both = client.completions.create(model=server["model"], prompt=["The capital of France is", "Cats say"],
                                     max_tokens=6, temperature=0)
    assert [c.index for c in both.choices] == [0, 1] and both.choices[0].text == r.choices[0].text
    streamed = client.completions.create(model=server["model"], prompt="The capital of France is", max_tokens=6,
                                         temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == r.choices[0].text


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list()] == [server["model"]]
    assert client.models.retrieve(server["model"]).owned_by == "sftflow"
    health = httpx.get(server["url"] + "/health").json()  # no key needed: for load balancers
    assert health["status"] == "ok" and health["model"] == server["model"]


def test_errors_have_openai_shape(client, server):
    model = server["model"]
    hi = [{"role": "user", "content": "hi"}]
    cases = [
        (dict(model="gpt-4", messages=hi), openai.NotFoundError, "does not exist"),
        (dict(model=model, messages=hi, n=2), openai.BadRequestError, "only n=1"),
        (dict(model=model, messages=hi, max_tokens=65), openai.BadRequestError, "limit of 64"),
        (dict(model=model, messages=hi, temperature=3), openai.BadRequestError, "'temperature'"),
        (dict(model=model, messages=[]), openai.BadRequestError, "'messages'"),
        (dict(model=model, messages=[{"role": "robot", "content": "x"}]), openai.BadRequestError, "'messages.0.role'"),
        (dict(model=model, messages=hi, stop=["a", "b", "c", "d", "e"]), openai.BadRequestError, "at most 4"),
        (dict(model=model, messages=hi, tool_choice="required"), openai.BadRequestError, "'tool_choice': needs 'tools'"),
        (dict(model=model, messages=hi, functions=[{"name": "f"}]), openai.BadRequestError,
         "unsupported parameter 'functions'"),
        (dict(model=model, messages=[{"role": "user", "content": "word " * 3000}]), openai.BadRequestError,
         "context"),
    ]
    for kwargs, error, text in cases:
        with pytest.raises(error) as info:
            client.chat.completions.create(**kwargs)
        body = info.value.body
        assert set(body) == {"message", "type", "param", "code"} and text in body["message"], body
    wrong = openai.OpenAI(base_url=server["url"] + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()

    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    url = server["url"]
    raw = [
        (httpx.post(url + "/v1/chat/completions", content=b"{oops", headers=headers), 400, "not valid JSON"),
        (httpx.post(url + "/v1/chat/completions", content=b"[1]", headers=headers), 400, "JSON object"),
        (httpx.post(url + "/v1/chat/completions", content=b"x" * 300_000, headers=headers), 413, "larger than"),
        (httpx.get(url + "/v1/nothing", headers=headers), 404, "Not Found"),
        (httpx.post(url + "/v1/chat/completions", json={"model": model, "messages": hi}), 401, "API key"),
    ]
    for r, status, text in raw:
        assert r.status_code == status and text in r.json()["error"]["message"], r.text
    assert server["engine"].stats["errors"] == 0


def _bench():
    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "bench" / "serve_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_load_test_batches_and_scales(server, predictions):
    """bench/serve_load.py, small: zero errors, and concurrent requests share batches."""
    bench = _bench()
    prompts = [p["prompt"] for p in predictions]
    common = dict(requests=24, max_tokens=16, api_key=KEY)
    one = bench.load_test(server["url"], server["model"], prompts, concurrency=1, **common)
    eight = bench.load_test(server["url"], server["model"], prompts, concurrency=8, **common)
    print(f"\nload: c=1 {one['requests_per_s']} req/s p50 {one['p50_ms']} ms p95 {one['p95_ms']} ms; "
          f"c=8 {eight['requests_per_s']} req/s p50 {eight['p50_ms']} ms p95 {eight['p95_ms']} ms, "
          f"mean batch {eight['mean_batch']}")
    assert one["errors"] == eight["errors"] == 0 and one["ok"] == eight["ok"] == 24
    assert one["mean_batch"] == 1.0 and eight["mean_batch"] > 1.5
    assert eight["requests_per_s"] > 1.5 * one["requests_per_s"]


def test_cli_serve_starts_and_answers(run_dir, processes):
    """Started as typed, it answers; its stderr holds no library line from start-up to ctrl-C."""
    proc = processes.sftflow("serve", run_dir, "--port", "0", "--api-key", "k", "--threads", "1",
                             env={"OMP_NUM_THREADS": "1"})
    url = None
    deadline = time.monotonic() + 90
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "/v1 (model" in line:
            url = line.split()[1].removesuffix("/v1")
    assert url, proc.communicate()[1] if proc.poll() is not None else "no URL printed"
    r = httpx.post(url + "/v1/chat/completions", headers={"Authorization": "Bearer k"}, timeout=60,
                   json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 4
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert foreign_lines(stderr) == [], stderr


def test_cli_chat_and_one_line_errors(run_dir, tmp_path):
    r = subprocess.run([SFTFLOW, "chat", str(run_dir), "--max-tokens", "12", "--threads", "1"], text=True,
                       input="What is the capital of France?\n/reset\nhello\n/exit\n", capture_output=True,
                       timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0 and foreign_lines(r.stderr) == [], r.stderr
    assert "chat with tiny" in r.stdout and r.stdout.count("tiny> ") == 2 and "(conversation cleared)" in r.stdout
    for args, text in [(["serve", str(tmp_path / "nope")], "not found"),
                       (["serve", str(tmp_path)], "not a run folder"),
                       (["chat", str(tmp_path / "nope")], "not found")]:
        r = subprocess.run([SFTFLOW, *args], text=True, capture_output=True, timeout=60)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], r.stderr


def test_full_method_run_serves_too(tmp_path, tiny_model_dir, one_thread):
    """A run that saved a whole model (method full) loads through the same path, no base needed."""
    from sftflow.model.engine import GenRequest, decode_batch
    from sftflow.runs import load_run, resolve_run

    run_dir = make_run(tmp_path / "proj", tiny_model_dir, method="full", evaluate=False)
    run = resolve_run(tmp_path / "proj" / "sftflow.yaml", base=str(tmp_path / "missing-base"))
    assert run.run_dir == run_dir and run.method == "full"
    model, template = load_run(run)
    tok = template.tokenizer
    done = {}
    ids = tok("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
              add_special_tokens=False)["input_ids"]
    decode_batch(model, template, [GenRequest(prompt_ids=ids, max_tokens=8, temperature=0,
                                         on_event=lambda kind, payload: done.update({kind: payload}))])
    assert done["done"]["completion_tokens"] <= 8 and done["done"]["text"]


# ---------------------------------------------------------------- hostile clients (issue 10, promise 5)


def _raw(url: str, body: bytes, content_type: str | None = "application/json", method: str = "POST",
         path: str = "/v1/chat/completions", key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if content_type:
        headers["content-type"] = content_type
    return httpx.request(method, url + path, content=body, headers=headers, timeout=30)


def test_hostile_requests_get_4xx_in_openai_shape_never_500(server):
    """Malformed JSON, wrong types and content types, oversized and odd paths: a 4xx with
    OpenAI's error body every time, and the decoding engine never sees a failure."""
    url, model = server["url"], server["model"]
    hi = [{"role": "user", "content": "hi"}]

    def chat(**extra) -> bytes:
        return json.dumps({"model": model, "messages": hi, **extra}).encode()

    def chunked(n):  # no content-length: the limit must hold while streaming
        yield b'{"model": "' + b"x" * n

    cases = [
        (_raw(url, chat(), content_type="text/plain"), 415),
        (_raw(url, chat(), content_type="application/x-www-form-urlencoded"), 415),
        (_raw(url, chat(), content_type=None), 415),
        (_raw(url, b"[" * 250_000), 413),
        (_raw(url, b"[" * 100_000 + b"]" * 100_000), 400),  # nested too deeply for json
        (_raw(url, b'{"model": "\xff\xfe"}'), 400),
        (_raw(url, b"null"), 400),
        (_raw(url, b""), 400),
        (_raw(url, chat(temperature=float("nan"))), 400),  # json.dumps writes NaN, json.loads reads it
        (_raw(url, chat(top_p=float("inf"))), 400),
        (_raw(url, chat(max_tokens="ten")), 400),
        (_raw(url, chat(max_tokens=10**30)), 400),
        (_raw(url, chat(max_tokens=-1)), 400),
        (_raw(url, chat(seed=2**80)), 400),
        (_raw(url, chat(seed="seven")), 400),
        (_raw(url, chat(stop=[1, 2])), 400),
        (_raw(url, chat(stream="maybe")), 400),
        (_raw(url, chat(user={"id": 1})), 400),
        (_raw(url, json.dumps({"model": model, "messages": "hi"}).encode()), 400),
        (_raw(url, json.dumps({"model": model, "messages": [{"role": "user", "content": 5}]}).encode()), 400),
        (_raw(url, json.dumps({"model": model, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}).encode()), 400),
        (_raw(url, json.dumps({"model": [model], "messages": hi}).encode()), 400),
        (_raw(url, json.dumps({"model": model, "prompt": {"a": 1}}).encode(), path="/v1/completions"), 400),
        (_raw(url, json.dumps({"model": model, "prompt": [""]}).encode(), path="/v1/completions"), 400),
        (_raw(url, json.dumps({"model": model, "prompt": ["x"] * 33}).encode(), path="/v1/completions"), 400),
        (httpx.post(url + "/v1/chat/completions", content=chunked(300_000),
                    headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"}), 413),
        (_raw(url, b"", method="GET", path="/v1/models/../../../etc/passwd"), 404),
        (_raw(url, b"", method="GET", path="/v1/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd"), 404),
        (_raw(url, b"", method="GET", path="/static/../../sftflow.yaml"), 404),
        (_raw(url, chat(), method="PUT"), 405),
        (_raw(url, chat(), key="test-kez"), 401),  # a near miss is still a miss
        (_raw(url, chat(), key="x" * 10_000), 401),
    ]
    for i, (r, status) in enumerate(cases):
        assert r.status_code == status, (i, r.status_code, r.text[:300])
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], (i, error)
    # a lone surrogate from a JSON escape: valid JSON, text no encoder can write; answered, not crashed
    r = _raw(url, b'{"model": "%s", "messages": [{"role": "user", "content": "\\ud800 hi"}], "max_tokens": 2}'
             % model.encode())
    assert r.status_code == 400 and "lone surrogate" in r.json()["error"]["message"], r.text
    assert server["engine"].stats["errors"] == 0
    assert httpx.get(url + "/health").json()["status"] == "ok"


def test_no_cors_and_no_server_banner(server):
    """CORS is off: no Access-Control-Allow-Origin on answers or preflights, so a web page on
    another origin cannot read anything from the server with the user's browser."""
    url = server["url"]
    origin = {"Origin": "https://evil.example"}
    pre = httpx.options(url + "/v1/chat/completions",
                        headers={**origin, "Access-Control-Request-Method": "POST",
                                 "Access-Control-Request-Headers": "authorization,content-type"})
    assert 400 <= pre.status_code < 500
    got = httpx.get(url + "/v1/models", headers={**origin, "Authorization": f"Bearer {KEY}"})
    assert got.status_code == 200
    for r in (pre, got, httpx.get(url + "/health", headers=origin)):
        assert not any(h.lower().startswith("access-control-") for h in r.headers), dict(r.headers)


def test_api_key_is_compared_in_constant_time(server, monkeypatch):
    """Every key check goes through hmac.compare_digest (its time does not depend on where
    the first wrong character is)."""
    import hmac

    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    for key in ("wrong", KEY[:-1] + "x", KEY):
        httpx.get(server["url"] + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert len(seen) == 3 and all(KEY.encode() in pair for pair in seen)


@pytest.fixture
def strict_server(server):
    """A second app on the shared engine with 1-second header and body timeouts."""
    from sftflow.serve.app import Limits, create_app

    engine = server["engine"]
    app = create_app(engine, server["model"], api_key=KEY, limits=Limits(max_tokens=16, read_timeout_s=1.0))
    with live_server(app, header_timeout=1.0) as url:
        yield url


def _connect(url: str):
    import socket

    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _read_all(sock) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_slow_clients_time_out_and_never_block_others(strict_server, server):
    """Slowloris: 30 connections dribbling headers, one sending half a body and one silent;
    meanwhile normal requests are answered at once; then each slow one gets 408 (the silent
    one is just closed) within the timeouts."""
    url = strict_server
    slow = [_connect(url) for _ in range(30)]
    for s in slow:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    half_body = _connect(url)
    half_body.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                      + b"\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\": ")
    silent = _connect(url)
    t0 = time.monotonic()
    for i in range(3):
        for s in slow[:5]:
            s.sendall(b"X-Slow-%d: 1\r\n" % i)  # still trickling
        r = httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=10,
                       json={"model": server["model"], "messages": [{"role": "user", "content": "hi"}],
                             "max_tokens": 2})
        assert r.status_code == 200, r.text
    assert time.monotonic() - t0 < 5  # not queued behind the slow ones
    for s in slow:
        reply = _read_all(s)
        assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
        s.close()
    reply = _read_all(half_body).decode()
    assert reply.startswith("HTTP/1.1 408 ") and '"code":"request_timeout"' in reply, reply[:400]
    assert _read_all(silent) == b""  # nothing was asked: closed without an answer
    assert time.monotonic() - t0 < 8
    half_body.close()
    silent.close()
    assert httpx.get(url + "/health").status_code == 200


@pytest.mark.slow
def test_load_500_requests_at_concurrency_16_no_errors_bounded_memory(server, predictions):
    """The bounded load test: 500 chat requests from 16 threads, each thread stops when the
    shared count runs out. Zero errors (so zero 5xx), and the process's resident memory after
    the run stays within 150 MB of where it was after a warm-up."""
    bench = _bench()
    prompts = [p["prompt"] for p in predictions]

    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    bench.load_test(server["url"], server["model"], prompts, requests=32, concurrency=16, max_tokens=4, api_key=KEY)
    before = rss_mb()
    t0 = time.monotonic()
    result = bench.load_test(server["url"], server["model"], prompts, requests=500, concurrency=16, max_tokens=4,
                             api_key=KEY, timeout=60)
    after = rss_mb()
    print(f"\nload: 500 requests at concurrency 16 in {time.monotonic() - t0:.1f}s, {result['errors']} errors, "
          f"{result['requests_per_s']} req/s, p95 {result['p95_ms']} ms, mean batch {result['mean_batch']}; "
          f"RSS {before:.0f} -> {after:.0f} MB")
    assert result["ok"] == 500 and result["errors"] == 0, result["error_samples"]
    assert after - before < 150
    assert server["engine"].stats["errors"] == 0


# ---------------------------------------------------------------- someone else's run folder (issue 17)

MARKED_MODEL = '''import os
from pathlib import Path

from transformers import LlamaConfig, LlamaForCausalLM

Path(os.environ["SFTFLOW_TEST_MARKER"]).write_text("the model's own code ran")


class MarkedConfig(LlamaConfig):
    model_type = "llama"


class MarkedLlama(LlamaForCausalLM):
    config_class = MarkedConfig
'''


@pytest.fixture
def remote_code_run(run_dir, tmp_path):
    """A copy of the run whose config.yaml says model.trust_remote_code: true, and whose base
    model ships Python code (an auto_map) that leaves a marker file when it is imported."""
    import shutil

    project = tmp_path / "proj"
    shutil.copytree(run_dir.parents[1], project)
    run = project / "runs" / "tiny"
    for path in (run / "config.yaml", project / "sftflow.yaml"):
        cfg = yaml.safe_load(path.read_text())
        cfg["model"]["trust_remote_code"] = True
        path.write_text(yaml.safe_dump(cfg))
    base = project / cfg["model"]["name_or_path"]
    (base / "marked_model.py").write_text(MARKED_MODEL)
    config = json.loads((base / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "marked_model.MarkedConfig", "AutoModelForCausalLM": "marked_model.MarkedLlama"}
    (base / "config.json").write_text(json.dumps(config))
    return run


def test_run_folders_own_code_needs_the_flag(remote_code_run, tmp_path):
    """A run folder's config cannot switch on its model's Python code by itself: serve and chat
    stop with one line naming the file, the key and the flag; with --trust-remote-code the
    code is honoured (it really runs: the marker file appears)."""
    from sftflow.errors import SftflowError
    from sftflow.runs import load_run, resolve_run
    from sftflow.serve.app import Limits
    from sftflow.serve.app import serve as run_serve
    from sftflow.terminal_chat import chat as run_chat

    marker = tmp_path / "remote-code-ran"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SFTFLOW_TEST_MARKER": str(marker),
           "HF_MODULES_CACHE": str(tmp_path / "hf-modules")}  # where transformers copies the model's code
    config_file = remote_code_run / "config.yaml"

    for args in (["chat", str(remote_code_run)], ["serve", str(remote_code_run), "--port", "0"],
                 ["serve", str(remote_code_run.parents[1] / "sftflow.yaml"), "--port", "0"]):
        r = subprocess.run([SFTFLOW, *args, "--threads", "1"], text=True, input="/exit\n", capture_output=True,
                           timeout=120, env=env)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1, (args, r.returncode, r.stdout[-300:], r.stderr)
        named = config_file if args[1] == str(remote_code_run) else remote_code_run.parents[1] / "sftflow.yaml"
        assert str(named) in lines[0] and "model.trust_remote_code" in lines[0] and "--trust-remote-code" in lines[0]
    assert not marker.exists()  # refused before any of the model's code was imported
    run = resolve_run(remote_code_run)
    assert run.trust_remote_code
    for call in (lambda: load_run(run),
                 lambda: run_serve(run, host="127.0.0.1", port=0, api_key=None, limits=Limits(), max_batch=1,
                                   batch_wait_ms=0, threads=1),
                 lambda: run_chat(run, system=None, temperature=0, top_p=1, max_tokens=4, seed=None, threads=1,
                                  read=lambda prompt: "/exit")):
        with pytest.raises(SftflowError, match="model.trust_remote_code is true.*--trust-remote-code"):
            call()
    assert not marker.exists()

    r = subprocess.run([SFTFLOW, "chat", str(remote_code_run), "--trust-remote-code", "--threads", "1",
                        "--max-tokens", "4"], text=True, input="hello\n/exit\n", capture_output=True, timeout=120,
                       env=env)
    assert r.returncode == 0 and "tiny> " in r.stdout, r.stderr
    assert marker.read_text() == "the model's own code ran"


def test_pickled_adapter_is_refused_with_the_way_to_convert_it(run_dir, tmp_path):
    """An adapter saved as adapter_model.bin (PEFT, safe_serialization=False) is not loaded:
    PEFT would torch.load it. One line says how to convert it; done that way, it loads."""
    import shutil

    from peft import PeftModel

    from sftflow.errors import SftflowError
    from sftflow.model.load import load_chat, load_model, load_tuned
    from sftflow.runs import resolve_run

    project = tmp_path / "proj"
    shutil.copytree(run_dir.parents[1], project)
    run = resolve_run(project / "runs" / "tiny")
    model_dir = run.run_dir / "model"
    template = load_chat(str(model_dir))
    adapter = PeftModel.from_pretrained(load_model(run.base_path, template), str(model_dir))
    (model_dir / "adapter_model.safetensors").unlink()
    adapter.save_pretrained(str(model_dir), safe_serialization=False)
    assert sorted(p.name for p in model_dir.glob("adapter_model.*")) == ["adapter_model.bin"]

    with pytest.raises(SftflowError) as info:
        load_tuned(run.run_dir, run.base_path, method="lora")
    message = str(info.value)
    assert "\n" not in message and str(model_dir / "adapter_model.bin") in message
    assert "safetensors only" in message and "save_pretrained" in message and "safe_serialization=True" in message
    r = subprocess.run([SFTFLOW, "chat", str(run.run_dir), "--threads", "1"], text=True, input="/exit\n",
                       capture_output=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "adapter_model.bin" in lines[0], r.stderr

    # the conversion the message gives, done by someone who trusts the file
    PeftModel.from_pretrained(load_model(run.base_path, template), str(model_dir)).save_pretrained(
        str(model_dir), safe_serialization=True)
    model, _ = load_tuned(run.run_dir, run.base_path, method="lora")
    assert model is not None


def test_a_big_request_is_parsed_off_the_event_loop(server):
    """While a 4 MB chat request (2,000 messages) is parsed, validated, rendered and tokenized,
    the same server still answers /health: the big one is still unanswered when the small one
    comes back. No tight timing: the small request only has to overtake the big one."""
    import select

    from sftflow.serve.app import Limits, create_app

    app = create_app(server["engine"], server["model"], api_key=KEY, limits=Limits(max_request_bytes=8_000_000))
    with live_server(app) as url:
        messages = [{"role": ("user", "assistant")[i % 2], "content": f"message {i} " + "word " * 400} for i in range(2000)]
        body = json.dumps({"model": server["model"], "messages": messages, "max_tokens": 4}).encode()
        big = _connect(url)
        try:
            t0 = time.monotonic()
            big.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % (KEY.encode(), len(body)) + body)
            time.sleep(0.3)  # the server has the whole body by now, and works on it
            overtook, waits = 0, []
            with httpx.Client(timeout=60) as small:
                for _ in range(50):
                    t = time.monotonic()
                    assert small.get(url + "/health").status_code == 200
                    waits.append(time.monotonic() - t)
                    if select.select([big], [], [], 0)[0]:  # the big answer has arrived
                        break
                    overtook += 1
                    time.sleep(0.05)
            reply = _read_all_http(big)
            took = time.monotonic() - t0
            print(f"\nbig request ({len(body) / 1e6:.1f} MB): answered after {took:.2f}s; /health answered {overtook} "
                  f"times meanwhile, slowest {max(waits) * 1000:.0f} ms")
            assert reply.startswith(b"HTTP/1.1 400 ") and b"context_length_exceeded" in reply, reply[:300]
            assert overtook >= 1, f"/health waited for the big request ({max(waits):.2f}s)"
        finally:
            big.close()


def _read_all_http(sock) -> bytes:
    """One HTTP/1.1 response with a content-length, read to its end (the connection stays open)."""
    out = b""
    while b"\r\n\r\n" not in out:
        out += sock.recv(65536)
    head, _, rest = out.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest
