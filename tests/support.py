"""What many test files share: the CLI as a user types it, and an app on a real server.

The `cli` and `live_server` fixtures in conftest.py hand these out; modules that need them at
import time (module-scoped fixtures, helpers) import them from here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

SFTFLOW = str(Path(sys.executable).parent / "sftflow")  # the console script pip installed next to python


def sftflow(*args, cwd=None, timeout: float = 600, env: dict | None = None, columns: int = 120):
    """`sftflow ARGS` in a subprocess, as typed in a terminal without colour."""
    return subprocess.run([SFTFLOW, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": str(columns), **(env or {})})


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
