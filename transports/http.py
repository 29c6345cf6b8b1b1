"""A small HTTP server (HTTP/1.0 answers, one request per connection): /metrics, /healthz, admin API.

Not a general web server, and bounded against hostile peers: a request head of at most MAX_HEAD
bytes and MAX_HEADERS header lines, a body only with Content-Length and at most `max_body`
bytes (no chunked uploads), all of it read within READ_TIMEOUT seconds; a bounded number of
connections at once, past which new ones are closed unanswered. Every answer says
`Connection: close`. The parsing is sans-I/O (`parse_head`); the server around it is asyncio.

Callers give either `routes` (path -> a function of nothing: GET and HEAD only, as /metrics) or
a `handler` (an async function of the whole `Request`, which answers any method).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

Response = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[], Response]

MAX_HEAD = 8192
MAX_HEADERS = 64
MAX_QUERY_FIELDS = 32
READ_TIMEOUT = 5.0
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"})
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    501: "Not Implemented",
    503: "Service Unavailable",
}


@dataclass(slots=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Request:
    method: str
    path: str  # still percent-encoded: split it first (`segments`), then decode each part
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    peer: str
    body: bytes = b""

    def segments(self) -> list[str]:
        """The path's parts, each percent-decoded: `/api/queues/a%2Fb` -> ["api", "queues", "a/b"]."""
        return [unquote(part) for part in self.path.split("/") if part]


Handler = Callable[[Request], Awaitable[Reply]]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_head(head: bytes) -> Request:
    """The request line and headers (up to the blank line); BadRequest names what is wrong."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "bad request line")
    method, target, _ = parts
    if method not in METHODS:
        raise BadRequest(501, f"method {method[:20]!r} not supported")
    if not target.startswith("/"):
        raise BadRequest(400, "the target must be a path")
    headers: dict[str, str] = {}
    fields = [line for line in lines[1:] if line]
    if len(fields) > MAX_HEADERS:
        raise BadRequest(400, f"more than {MAX_HEADERS} headers")
    for line in fields:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "bad header line")
        headers[name.lower()] = value.strip()
    path, _, query_text = target.partition("?")
    try:
        query = dict(parse_qsl(query_text, max_num_fields=MAX_QUERY_FIELDS))
    except ValueError:
        raise BadRequest(400, f"more than {MAX_QUERY_FIELDS} query fields") from None
    return Request(method, path, query, headers, peer="")


def body_length(request: Request, max_body: int) -> int:
    if "transfer-encoding" in request.headers:
        raise BadRequest(411, "send a Content-Length, not a Transfer-Encoding")
    text = request.headers.get("content-length", "0")
    if not text.isdigit() or len(text) > 12:
        raise BadRequest(400, "bad Content-Length")
    length = int(text)
    if length > max_body:
        raise BadRequest(413, f"a body of at most {max_body} bytes")
    return length


class HttpServer:
    def __init__(self, host: str, port: int, routes: dict[str, Route] | None = None,
                 max_connections: int = 64, handler: Handler | None = None, max_body: int = 65536) -> None:
        self.host = host
        self.port = port
        self.routes = routes or {}
        self.handler = handler or self._route
        self.max_body = max_body
        self._slots = asyncio.Semaphore(max_connections)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_HEAD)

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def stop_when_cancelled(self) -> None:
        """Wait for ever; stop the server when cancelled (a task the daemon cancels at exit)."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._slots.locked():
            writer.close()
            return
        async with self._slots:
            try:
                reply, send_body = await self._answer(reader, writer)
                writer.write(_encode(reply, send_body))
                await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await asyncio.wait_for(writer.wait_closed(), READ_TIMEOUT)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[Reply, bool]:
        async with asyncio.timeout(READ_TIMEOUT):  # the whole request, head and body, in this time
            head = await reader.readuntil(b"\r\n\r\n")
            try:
                request = parse_head(head)
                length = body_length(request, self.max_body)
            except BadRequest as exc:
                return Reply(exc.status, "text/plain", f"{exc}\n".encode()), True
            if length:
                request.body = await reader.readexactly(length)
        peer = writer.get_extra_info("peername")
        request.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        return await self.handler(request), request.method != "HEAD"

    async def _route(self, request: Request) -> Reply:
        if request.method not in ("GET", "HEAD"):
            return Reply(405, "text/plain", b"only GET\n")
        route = self.routes.get(request.path)
        if route is None:
            return Reply(404, "text/plain", b"not found\n")
        status, ctype, body = route()
        return Reply(status, ctype, body)


def _encode(reply: Reply, send_body: bool) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
    head = (
        f"HTTP/1.0 {reply.status} {REASONS.get(reply.status, 'OK')}\r\n"
        f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n{extra}"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (reply.body if send_body else b"")
