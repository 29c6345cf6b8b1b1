"""A STOMP listener, whatever the transport: owns its connections, their governance and shutdown.

Governance: a new connection is refused (ERROR, close) past `max_connections` in total or past
`max_connections_per_address` from one client address. One periodic scan, every
`connection_scan_interval`, asks each connection whether it is overdue (CONNECT not completed within
`connect_timeout`, heart-beats stopped) and closes those that are: one task for the listener, not a
timer per connection, and its cost is bounded by the connection limit and sliced (SCAN_SLICE) so that
it never holds the loop for long. `closed` counts ended connections by reason, for the metrics.

Shutdown is staged and bounded, as uvicorn does it: stop listening, let each connection finish the
frames it already read, close, wait up to `grace`, abort the stragglers. On lock loss the daemon calls
`close_all_connections()` instead, which drops every client at once.

A transport subclasses `StompServer` and supplies only its listener (`_listen`, `_stop_listening`,
`_listener_closed`, `bound_port`); each peer it accepts gets `new_connection()` and a Wire.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable

from config.model import Limits
from transports.base import FrameHandler, FrameLink, error_frame
from transports.connection import Connection
from transports.memory import MemoryBudget
from transports.readturns import ReadTurns, turns_for

log = logging.getLogger(__name__)

HandlerFactory = Callable[[FrameLink], FrameHandler]
SCAN_SLICE = 500  # connections looked at per loop turn by the scan
REFUSED_TOTAL = "refused_connection_limit"
REFUSED_ADDRESS = "refused_address_limit"


class StompServer(ABC):
    def __init__(self, host: str, port: int, handler_factory: HandlerFactory, limits: Limits,
                 scheme: str = "tcp", memory: MemoryBudget | None = None) -> None:
        self.host = host
        # Shared with the broker (its destinations and transactions count in it); a listener
        # started alone has a budget of its own.
        self.memory = memory if memory is not None else MemoryBudget.from_limits(limits)
        self.port = port
        self.scheme = scheme
        self.handler_factory = handler_factory
        self.limits = limits
        self._connections: set[Connection] = set()
        self._per_address: Counter[str] = Counter()  # open connections by client address
        self.closed: Counter[str] = Counter()  # ended connections by close_reason ("peer": it left)
        self._scan_task: asyncio.Task[None] | None = None
        self.read_turns: ReadTurns | None = None  # the loop's bulk-read allowance, once started

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
        self.read_turns = turns_for(asyncio.get_running_loop())
        await self._listen()
        self._scan_task = asyncio.get_running_loop().create_task(self._scan_loop(), name="connection-scan")
        log.info("STOMP connector listening on %s://%s:%d", self.scheme, self.host, self.bound_port)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def new_connection(self) -> Connection:
        return Connection(self.limits, self._made, self._lost, self.scheme, self.memory)

    def _made(self, conn: Connection) -> FrameHandler | None:
        refusal = self._refusal(conn.address)
        if refusal is not None:
            conn.close_reason, message, detail = refusal
            log.warning("refusing %s: %s", conn.peer, detail)
            conn.close(error_frame(message, detail))
            return None
        self._connections.add(conn)
        self._per_address[conn.address] += 1
        return self.handler_factory(conn)

    def _refusal(self, address: str) -> tuple[str, str, str] | None:
        """(reason, ERROR message, detail) if a connection from `address` may not be admitted now."""
        limits = self.limits
        if len(self._connections) >= limits.max_connections:
            return (REFUSED_TOTAL, "too many connections",
                    f"the broker accepts at most {limits.max_connections} connections")
        if self._per_address[address] >= limits.max_connections_per_address:
            return (REFUSED_ADDRESS, "too many connections from this address",
                    f"the broker accepts at most {limits.max_connections_per_address} connections "
                    f"from one address ({address[:64]})")
        return None

    def _lost(self, conn: Connection) -> None:
        self.closed[conn.close_reason or "peer"] += 1
        if conn not in self._connections:
            return  # refused: never counted
        self._connections.discard(conn)
        left = self._per_address[conn.address] - 1
        if left > 0:
            self._per_address[conn.address] = left
        else:
            del self._per_address[conn.address]  # the table holds only addresses with connections

    async def _scan_loop(self) -> None:
        interval = self.limits.connection_scan_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.scan()
            except Exception:  # the scan must survive anything one connection does
                log.exception("connection scan failed")

    async def scan(self) -> int:
        """Close every overdue connection; return how many. At most SCAN_SLICE per loop turn."""
        loop = asyncio.get_running_loop()
        connections = list(self._connections)
        expired = 0
        for start in range(0, len(connections), SCAN_SLICE):
            if start:
                await asyncio.sleep(0)  # let other work run between slices
            now = loop.time()
            for conn in connections[start:start + SCAN_SLICE]:
                reason = conn.overdue(now)
                if reason is not None:
                    conn.expire(reason, now)
                    expired += 1
        return expired

    async def _stop_scan(self) -> None:
        task, self._scan_task = self._scan_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # wait, not await: its cancellation is not ours

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening, let connections finish what they read, close them; bounded by ~2 × grace."""
        self._stop_listening()
        await self._stop_scan()  # a connection finishing its work must not be expired meanwhile
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


class AsyncioListener(StompServer):
    """A StompServer on one `asyncio.Server` (from `loop.create_server`): what the TCP, TLS and
    WebSocket connectors share. A subclass's `_listen` sets `_server`."""

    _server: asyncio.Server | None = None

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def bound_port(self) -> int:
        return int(self.sockets[0].getsockname()[1]) if self.sockets else self.port

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _listener_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
