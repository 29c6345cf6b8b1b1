"""The asyncio TCP connector for STOMP: listens, enforces the connection limit, owns every connection.

Shutdown is staged and bounded, as uvicorn does it: stop listening, let each connection finish the
frames it already read, close, wait up to `grace`, abort the stragglers. On lock loss the daemon calls
`close_all_connections()` instead, which drops every client at once.

Works on any asyncio event loop (the daemon installs uvloop).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from config.model import Limits
from transports.connection import Connection, FrameHandler, error_frame

log = logging.getLogger(__name__)

__all__ = ["Connection", "FrameHandler", "StompServer"]


class StompServer:
    def __init__(
        self, host: str, port: int, handler_factory: Callable[[Connection], FrameHandler], limits: Limits
    ) -> None:
        self.host = host
        self.port = port
        self.handler_factory = handler_factory
        self.limits = limits
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self.limits, self._made, self._lost), self.host, self.port, reuse_address=True
        )
        log.info("STOMP connector listening on %s:%d", self.host, self.bound_port)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def bound_port(self) -> int:
        return int(self.sockets[0].getsockname()[1]) if self.sockets else self.port

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def _made(self, conn: Connection) -> FrameHandler | None:
        if len(self._connections) >= self.limits.max_connections:
            log.warning("refusing %s: %d connections already open", conn.peer, len(self._connections))
            conn.close(error_frame("too many connections",
                                   f"the broker accepts at most {self.limits.max_connections} connections"))
            return None
        self._connections.add(conn)
        return self.handler_factory(conn)

    def _lost(self, conn: Connection) -> None:
        self._connections.discard(conn)

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening, let connections finish what they read, close them; bounded by ~2 × grace."""
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        if connections:
            finishing = [asyncio.ensure_future(c.finish(grace)) for c in connections]
            _, late = await asyncio.wait(finishing, timeout=grace + 0.5)
            for task in late:
                task.cancel()
            for conn in connections:
                conn.close()
            await asyncio.wait([c.lost for c in connections], timeout=grace)
            for conn in connections:
                if not conn.lost.done():
                    conn.abort()  # a peer that does not read cannot hold shutdown hostage
            await asyncio.wait([c.lost for c in connections], timeout=1.0)
            for conn in connections:
                conn.cancel_reader()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def close_all_connections(self) -> None:
        """Drop every client at once, unsent data included (the lock is lost: acknowledge nothing more)."""
        connections = list(self._connections)
        for conn in connections:
            conn.abort()
        if connections:
            await asyncio.wait([c.lost for c in connections], timeout=1.0)
