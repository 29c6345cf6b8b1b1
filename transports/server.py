"""A STOMP listener, whatever the transport: owns its connections, the connection limit and shutdown.

Shutdown is staged and bounded, as uvicorn does it: stop listening, let each connection finish the
frames it already read, close, wait up to `grace`, abort the stragglers. On lock loss the daemon calls
`close_all_connections()` instead, which drops every client at once.

A transport subclasses `StompServer` and supplies only its listener (`_listen`, `_stop_listening`,
`_listener_closed`, `bound_port`); each peer it accepts gets `new_connection()` and a Wire.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

from config.model import Limits
from transports.base import FrameHandler, FrameLink, error_frame
from transports.connection import Connection

log = logging.getLogger(__name__)

HandlerFactory = Callable[[FrameLink], FrameHandler]


class StompServer(ABC):
    def __init__(self, host: str, port: int, handler_factory: HandlerFactory, limits: Limits,
                 scheme: str = "tcp") -> None:
        self.host = host
        self.port = port
        self.scheme = scheme
        self.handler_factory = handler_factory
        self.limits = limits
        self._connections: set[Connection] = set()

    # -- what a transport supplies ------------------------------------------------------------------

    @abstractmethod
    async def _listen(self) -> None:
        """Bind and accept peers; each gets `new_connection()` and a Wire."""

    @abstractmethod
    def _stop_listening(self) -> None:
        """Accept no new peers (existing connections stay)."""

    @abstractmethod
    async def _listener_closed(self) -> None:
        """Return once the listener is fully closed (called last in `stop`)."""

    @property
    @abstractmethod
    def bound_port(self) -> int:
        """The port actually bound (the OS picks one for port 0)."""

    # -- the rest, for every transport --------------------------------------------------------------

    async def start(self) -> None:
        await self._listen()
        log.info("STOMP connector listening on %s://%s:%d", self.scheme, self.host, self.bound_port)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def new_connection(self) -> Connection:
        return Connection(self.limits, self._made, self._lost, self.scheme)

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
        self._stop_listening()
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
        await self._listener_closed()

    async def close_all_connections(self) -> None:
        """Drop every client at once, unsent data included (the lock is lost: acknowledge nothing more)."""
        connections = list(self._connections)
        for conn in connections:
            conn.abort()
        if connections:
            await asyncio.wait([c.lost for c in connections], timeout=1.0)
