"""A scripted OpenAI-compatible endpoint on 127.0.0.1 for the synth and judge tests.

Test scaffolding only: the code under test talks to it over real HTTP with its real client.
Replies are deterministic functions of the request (`reply`), and `script` can queue
special answers for the next requests: an HTTP status (429, 500, 401, ...), a delay past
the client's timeout, or a raw reply text. Every request is recorded, and the largest
number of requests in flight at once is measured.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def default_reply(body: dict) -> str:
    """Teacher and judge behaviour that depends only on the request."""
    text = body["messages"][-1]["content"]
    digest = hashlib.sha256(text.encode()).hexdigest()
    if text.startswith("You grade one example"):
        answer = text.rsplit("Assistant:", 1)[-1]
        score = 1 if "WRONG" in answer else 4 if "meh" in answer else 5
        return json.dumps({"correctness": score, "helpfulness": score, "format": 1 if score == 1 else 5,
                           "reasons": f"graded {score} ({digest[:6]})"})
    if '{"prompt"' in text:
        words = " ".join(f"x{digest[i:i + 4]}" for i in range(0, 40, 4))
        return f'Sure! {{"prompt": "How do I handle case {words}?"}}'
    return f"Here is the answer {digest[:12]}."


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that gave up (timeout test) closed the socket: expected


class FakeOpenAI:
    def __init__(self, model: str = "teacher-1", api_key: str | None = None):
        self.model, self.api_key = model, api_key
        self.reply = default_reply
        self.script: list = []  # per upcoming request: int status, ("sleep", s), ("text", str), ("length", str)
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.delay = 0.0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with fake.lock:
                    fake.requests.append(body)
                    action = fake.script.pop(0) if fake.script else None
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                self.counted = True
                try:
                    self._answer(body, action)
                finally:
                    self._done()

            def _done(self):
                # before the reply goes out: once the client has it, it may send its next request
                # while this thread is still here, and that one must not count as one more in flight
                if self.counted:
                    self.counted = False
                    with fake.lock:
                        fake.in_flight -= 1

            def _send(self, status, obj, headers=None):
                self._done()
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _answer(self, body, action):
                if fake.api_key and self.headers.get("authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, {"error": {"message": "Incorrect API key provided"}})
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if body.get("model") != fake.model:
                    return self._send(404, {"error": {"message": f"model {body.get('model')} does not exist"}})
                time.sleep(fake.delay)
                if isinstance(action, int):
                    headers = {"retry-after": "0"} if action == 429 else None
                    return self._send(action, {"error": {"message": f"scripted {action}"}}, headers)
                finish, text = "stop", None
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                elif isinstance(action, tuple) and action[0] == "text":
                    text = action[1]
                elif isinstance(action, tuple) and action[0] == "length":
                    text, finish = action[1], "length"
                text = fake.reply(body) if text is None else text
                words = len(re.findall(r"\S+", body["messages"][-1]["content"]))
                self._send(200, {"id": "x", "object": "chat.completion", "model": fake.model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": finish}],
                                 "usage": {"prompt_tokens": words, "completion_tokens": len(text.split()),
                                           "total_tokens": words + len(text.split())}})

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
