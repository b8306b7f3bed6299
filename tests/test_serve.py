"""`sftflow serve` and `sftflow chat` against a real run, through the official `openai` client.

The server runs in this process (uvicorn in a thread, on a free 127.0.0.1 port) with the
very objects `sftflow serve` builds; one test starts the real CLI in a subprocess.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.tiny_run import make_run, shared_run

openai = pytest.importorskip("openai")

SFTFLOW = str(Path(sys.executable).parent / "sftflow")
KEY = "test-key"
ROOT = Path(__file__).resolve().parents[1]


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
    from sftflow.serve import Engine, Limits, bind, create_app, load_run, resolve_run, url_of, uvicorn_server

    run = resolve_run(run_dir)
    model, tok = load_run(run)
    engine = Engine(model, tok, max_batch=8, batch_wait_ms=10).start()
    app = create_app(engine, run.name, api_key=KEY,
                     limits=Limits(max_request_bytes=200_000, max_tokens=64, default_max_tokens=32))
    sock = bind("127.0.0.1", 0)
    srv = uvicorn_server(app, sock)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(300):
        if srv.started:
            break
        time.sleep(0.02)
    assert srv.started
    yield {"url": url_of(sock), "model": run.name, "engine": engine}
    srv.should_exit = True
    thread.join(timeout=10)
    engine.stop()
    sock.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def predictions(run_dir):
    return [json.loads(line) for line in (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()]


def test_greedy_chat_equals_what_eval_generated(client, server, predictions, run_dir):
    """Same model, same chat template, same decoding: temperature 0 reproduces eval's outputs."""
    max_new = yaml.safe_load((run_dir / "config.yaml").read_text())["eval"]["max_new_tokens"]
    for p in predictions[:5]:
        r = client.chat.completions.create(model=server["model"], messages=p["prompt"], temperature=0,
                                           max_tokens=max_new)
        assert r.choices[0].message.content == p["tuned"], p["id"]
        assert r.choices[0].message.role == "assistant"
        assert r.choices[0].finish_reason in ("stop", "length")
        assert r.usage.prompt_tokens > 10 and 0 < r.usage.completion_tokens <= max_new
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


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
        (dict(model=model, messages=hi, tools=[{"type": "function", "function": {"name": "f"}}]),
         openai.BadRequestError, "unsupported parameter 'tools'"),
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

    headers = {"Authorization": f"Bearer {KEY}"}
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


def _start_cli(*args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([SFTFLOW, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_cli_serve_starts_and_answers(run_dir):
    proc = _start_cli("serve", str(run_dir), "--port", "0", "--api-key", "k", "--threads", "1")
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "/v1 (model" in line:
                url = line.split()[1].removesuffix("/v1")
        assert url, proc.stderr.read() if proc.poll() is not None else "no URL printed"
        r = httpx.post(url + "/v1/chat/completions", headers={"Authorization": "Bearer k"}, timeout=60,
                       json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 4
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_cli_chat_and_one_line_errors(run_dir, tmp_path):
    r = subprocess.run([SFTFLOW, "chat", str(run_dir), "--max-tokens", "12", "--threads", "1"], text=True,
                       input="What is the capital of France?\n/reset\nhello\n/exit\n", capture_output=True,
                       timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "chat with tiny" in r.stdout and r.stdout.count("tiny> ") == 2 and "(conversation cleared)" in r.stdout
    for args, text in [(["serve", str(tmp_path / "nope")], "not found"),
                       (["serve", str(tmp_path)], "not a run folder"),
                       (["chat", str(tmp_path / "nope")], "not found")]:
        r = subprocess.run([SFTFLOW, *args], text=True, capture_output=True, timeout=60)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], r.stderr


def test_full_method_run_serves_too(tmp_path, tiny_model_dir, one_thread):
    """A run that saved a whole model (method full) loads through the same path, no base needed."""
    from sftflow.serve import GenRequest, decode_batch, load_run, resolve_run

    run_dir = make_run(tmp_path / "proj", tiny_model_dir, method="full", evaluate=False)
    run = resolve_run(tmp_path / "proj" / "sftflow.yaml", base=str(tmp_path / "missing-base"))
    assert run.run_dir == run_dir and run.method == "full"
    model, tok = load_run(run)
    done = {}
    ids = tok("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
              add_special_tokens=False)["input_ids"]
    decode_batch(model, tok, [GenRequest(prompt_ids=ids, max_tokens=8, temperature=0,
                                         on_event=lambda kind, payload: done.update({kind: payload}))])
    assert done["done"]["completion_tokens"] <= 8 and done["done"]["text"]
