"""What many test files share: the CLI as a user types it, and an app on a real server.

The `cli` and `live_server` fixtures in conftest.py hand these out; modules that need them at
import time (module-scoped fixtures, helpers) import them from here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

SFTFLOW = str(Path(sys.executable).parent / "sftflow")  # the console script pip installed next to python

# Every line sftflow itself writes to stderr starts with one of these; anything else on a
# command's stderr came from a library (sftflow.logs sends theirs to the project's log file).
OWN_STDERR_PREFIXES = ("error: ", "warning: ", "interrupted")


def foreign_lines(stderr: str) -> list[str]:
    """The lines of `stderr` that sftflow did not write: a new library message fails a test
    that asserts this is empty, instead of slipping onto users' terminals."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(OWN_STDERR_PREFIXES)]


def sftflow(*args, cwd=None, timeout: float = 600, env: dict | None = None, columns: int = 120,
            input: str | None = None):
    """`sftflow ARGS` in a subprocess, as typed in a terminal without colour (`input`: what is typed)."""
    return subprocess.run([SFTFLOW, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          input=input, env={**os.environ, "NO_COLOR": "1", "COLUMNS": str(columns), **(env or {})})


class Processes:
    """The child processes one test starts, each stopped when the test ends, on every path (pass,
    fail, skip, timeout): the `processes` fixture calls `stop_all`. SIGINT first (what a person at
    the terminal sends: servers shut down cleanly), SIGKILL after 10 s."""

    def __init__(self):
        self.started: list[subprocess.Popen] = []

    def start(self, args, **popen_options) -> subprocess.Popen:
        proc = subprocess.Popen([str(a) for a in args], **popen_options)
        self.started.append(proc)
        return proc

    def sftflow(self, *args, env: dict | None = None, **popen_options) -> subprocess.Popen:
        """`sftflow ARGS` in the background, stdout and stderr piped as text, output unbuffered."""
        options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen_options}
        return self.start([SFTFLOW, *args], env={**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", **(env or {})},
                          **options)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@contextmanager
def live_server(app, **server_options):
    """`app` on uvicorn in a thread, bound to a free 127.0.0.1 port; yields its URL and stops it
    on exit. Startup is bounded (6 s), and a server that did not start fails the test."""
    from sftflow.web import bind, url_of, uvicorn_server

    sock = bind("127.0.0.1", 0)
    server = uvicorn_server(app, sock, **server_options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if server.started:
                break
            time.sleep(0.02)
        assert server.started, "uvicorn did not start within 6 s"
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
