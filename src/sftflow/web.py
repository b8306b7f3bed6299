"""The HTTP layer `serve` and `review` share: sockets, timeouts, bounded bodies, secrets.

    sock = bind("127.0.0.1", 0)
    uvicorn_server(app, sock).run(sockets=[sock])

Each app maps what goes wrong here to its own error shape (OpenAI JSON for serve, a page for
review); the limits are the same: a client gets HEADER_TIMEOUT_S for its request head and the
app's read timeout for its body, a body over the app's limit is cut off while it streams, and
a refused body closes the connection (CLOSE_AFTER) rather than reading on for the next request.
"""

import asyncio
import hashlib
import hmac
import socket
from urllib.parse import urlsplit

from sftflow.errors import SftflowError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
CLOSE_AFTER = (408, 413, 415)  # the body was not read to its end: close, do not wait for the rest


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


class BodyError(Exception):
    """A request body refused while reading it: an HTTP status, a message and an OpenAI-style code."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def media_type(request) -> str:
    """The request's content type without parameters, lower case ('' when it sent none)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def declared_too_large(request, max_bytes: int) -> bool:
    """The Content-Length header is over `max_bytes`, or not a number."""
    size = request.headers.get("content-length")
    return size is not None and (not size.isdigit() or int(size) > max_bytes)


async def read_body(request, *, max_bytes: int, timeout: float, too_large: str, what: str = "body") -> bytes:
    """The whole body, at most `max_bytes` (chunked bodies too), all of it within `timeout`
    seconds: BodyError 413 (`too_large`), 408 (too slow) or 400 (the client went away)."""
    from starlette.requests import ClientDisconnect

    if declared_too_large(request, max_bytes):
        raise BodyError(413, too_large, "request_too_large")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_bytes:
                    raise BodyError(413, too_large, "request_too_large")
    except TimeoutError as err:
        raise BodyError(408, f"request body not received within {timeout:g}s", "request_timeout") from err
    except ClientDisconnect as err:
        raise BodyError(400, f"the client closed the connection before sending the whole {what}") from err
    return bytes(body)


def bearer(request) -> str | None:
    """The key of an `Authorization: Bearer KEY` header, None without one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def same_secret(given: str, secret: str) -> bool:
    """Compared in constant time, so the answer's timing does not reveal how much was right."""
    return hmac.compare_digest(given.encode(), secret.encode())


def csrf_token(secret: str, session: str, user: str) -> str:
    """The form token of one login session. Keyed by the app's secret, so a page that can set
    cookies for this host (any port can) still cannot make one that matches."""
    return hmac.new(secret.encode(), f"csrf\0{session}\0{user}".encode(), hashlib.sha256).hexdigest()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"


def foreign_origin(request) -> tuple[str, str] | None:
    """(sent, own) when a request says it comes from another origin than this app's: browsers
    send Origin with every POST (Referer as a fallback), and 127.0.0.1 on another port counts."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    sent = request.headers.get("origin") or (origin_of(request.headers["referer"])
                                             if request.headers.get("referer") else None)
    return (sent, own) if sent is not None and sent != own else None
