"""A tiny HTTP/1.0 GET server for /metrics and /healthz, bounded against hostile peers.

Not a general web server: one request per connection, GET/HEAD only, a request head of at most
8 KiB read within a few seconds, routes supplied by the caller as path -> handler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

Response = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[], Response]

MAX_HEAD = 8192
READ_TIMEOUT = 5.0
REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    400: "Bad Request",
    503: "Service Unavailable",
}


class HttpServer:
    def __init__(self, host: str, port: int, routes: dict[str, Route], max_connections: int = 64) -> None:
        self.host = host
        self.port = port
        self.routes = routes
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

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._slots.locked():
            writer.close()
            return
        async with self._slots:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
                status, ctype, body, send_body = self._respond(head)
                writer.write(_encode(status, ctype, body, send_body))
                await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await asyncio.wait_for(writer.wait_closed(), READ_TIMEOUT)

    def _respond(self, head: bytes) -> tuple[int, str, bytes, bool]:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3:
            return 400, "text/plain", b"bad request\n", True
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n", True
        route = self.routes.get(target.split("?", 1)[0])
        if route is None:
            return 404, "text/plain", b"not found\n", method == "GET"
        status, ctype, body = route()
        return status, ctype, body, method == "GET"


def _encode(status: int, ctype: str, body: bytes, send_body: bool) -> bytes:
    head = (
        f"HTTP/1.0 {status} {REASONS.get(status, 'OK')}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (body if send_body else b"")
