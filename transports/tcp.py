"""The TCP connector for STOMP (`tcp://` and `stomp://`): an asyncio server whose peers are StreamWires.

`StreamWire` is the asyncio Protocol adapter for byte-stream transports (TCP, and TLS:
transports/tls.py is this server with an SSL context): a Wire over an asyncio Transport that
forwards the transport's callbacks to its Connection. It only moves bytes and flow-control
signals; everything STOMP happens in transports/connection.py, and the connections, the
connection limit and the staged shutdown are StompServer's (transports/server.py).

Writes are gathered per turn of the event loop: each frame would otherwise be a `send` system call
of its own (uvloop writes at once when its buffer is empty), and a fan-out or a backlog drain writes
many frames to one peer per turn. The frames of one turn go out in one `writelines` (one `writev`)
at the start of the next, or as soon as FLUSH_AT bytes are gathered, so flow control still sees
the transport's buffer grow within a turn and pauses the writer (at most FLUSH_AT bytes late).

Works on any asyncio event loop (the daemon installs uvloop).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from transports.connection import Connection
from transports.server import AsyncioListener

WRITE_HIGH_WATER = 256 * 1024
WRITE_LOW_WATER = 64 * 1024
FLUSH_AT = 64 * 1024  # gathered bytes that are written at once, without waiting for the turn to end


class StreamWire(asyncio.Protocol):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gathered: list[bytes] = []  # written during this turn, not yet given to the transport
        self._gathered_bytes = 0
        self._flush_scheduled = False

    # -- asyncio.Protocol: the transport calls these ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the asyncio.Transport interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()  # kept: each lookup is a getpid() system call
        self.transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        peer = transport.get_extra_info("peername")
        # Only a TLS peer that sent a certificate the context verified has one (`{}` or None
        # otherwise); None for plain TCP.
        certificate = transport.get_extra_info("peercert") or None
        self.conn.open(self, f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer), certificate)

    def data_received(self, data: bytes) -> None:
        self.conn.received(data)

    def eof_received(self) -> bool:
        return False  # half-closed by the client: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._gathered.clear()
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()

    # -- Wire: the Connection calls these -----------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self._gathered.append(data)
        self._gathered_bytes += len(data)
        if self._gathered_bytes >= FLUSH_AT:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Give what this turn wrote to the transport: one system call for all of it."""
        gathered = self._gathered
        if not gathered or self.transport is None:
            return
        self._gathered, self._gathered_bytes = [], 0
        if self.transport.is_closing():
            return  # aborted, or closed by the peer: nobody will read it
        if len(gathered) == 1:
            self.transport.write(gathered[0])
        else:
            self.transport.writelines(gathered)

    def write_buffer_size(self) -> int:
        size = self._gathered_bytes
        return size + (self.transport.get_write_buffer_size() if self.transport is not None else 0)

    def pause_reading(self) -> None:
        assert self.transport is not None
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        assert self.transport is not None
        self.transport.resume_reading()

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.flush()  # a close flushes what the transport holds, so what we hold goes first
            self.transport.close()

    def abort(self) -> None:
        self._gathered.clear()
        if self.transport is not None:
            self.transport.abort()


class TcpServer(AsyncioListener):
    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: StreamWire(self.new_connection()), self.host, self.port, reuse_address=True,
            **self._listen_options(),
        )

    def _listen_options(self) -> dict[str, Any]:
        """More keywords for loop.create_server: the TLS connector adds its SSL context."""
        return {}
