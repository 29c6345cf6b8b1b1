"""Connection states and events a client user can observe, and the listeners that observe them.

A plain tcp:// client goes CONNECTING -> CONNECTED -> DISCONNECTED -> CLOSED. A failover client goes
from DISCONNECTED to RECONNECTING (once per pass over its brokers, with the pass number and the
delay before it) and then back to CONNECTED (naming the broker), or to FAILED once
`maxReconnectAttempts` is spent. `disconnect()`/`close()` end in CLOSED.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

log = logging.getLogger(__name__)

MAX_QUEUED_EVENTS = 1000


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"

    @property
    def terminal(self) -> bool:
        return self in (ConnectionState.FAILED, ConnectionState.CLOSED)


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """One state change. `broker` for CONNECTED, `reason` for DISCONNECTED/FAILED, `attempt` and
    `delay` (seconds waited before this pass) for RECONNECTING; `at` is time.monotonic()."""

    state: ConnectionState
    broker: tuple[str, int] | None = None
    reason: str | None = None
    attempt: int = 0
    delay: float = 0.0
    at: float = 0.0
    tls: bool = False  # CONNECTED over TLS

    def describe(self) -> str:
        name = self.state.value  # read before the checks below narrow state (mypy loses .value's type)
        if self.state is ConnectionState.CONNECTED and self.broker is not None:
            scheme = "ssl" if self.tls else "tcp"
            return f"connected to {scheme}://{_host(self.broker[0])}:{self.broker[1]}"
        if self.state is ConnectionState.RECONNECTING:
            return f"reconnecting: attempt {self.attempt} after {self.delay:.3f}s"
        if self.reason:
            return f"{name}: {self.reason}"
        return name


StateCallback = Callable[[ConnectionState], None]
EventCallback = Callable[[ConnectionEvent], None]


class StateListeners:
    """The current state plus callbacks told of every change (in order, synchronously).

    State callbacks hear each change of state once; event callbacks hear every event, including
    each RECONNECTING pass.
    """

    __slots__ = ("_callbacks", "_event_callbacks", "state", "last_event")

    def __init__(self) -> None:
        self.state = ConnectionState.CONNECTING
        self.last_event = ConnectionEvent(ConnectionState.CONNECTING, at=time.monotonic())
        self._callbacks: list[StateCallback] = []
        self._event_callbacks: list[EventCallback] = []

    def add(self, callback: StateCallback) -> Callable[[], None]:
        """Register `callback`; return a function that unregisters it."""
        return _register(self._callbacks, callback)

    def add_event(self, callback: EventCallback) -> Callable[[], None]:
        return _register(self._event_callbacks, callback)

    def set(self, state: ConnectionState) -> None:
        self.emit(ConnectionEvent(state))

    def emit(self, event: ConnectionEvent) -> None:
        if not event.at:
            event = replace(event, at=time.monotonic())
        changed = event.state is not self.state
        if not changed and event.state is not ConnectionState.RECONNECTING:
            return
        self.state, self.last_event = event.state, event
        for callback in list(self._event_callbacks):
            _call(callback, event)
        if changed:
            for state_callback in list(self._callbacks):
                _call(state_callback, event.state)


class EventStream:
    """`async for event in client.events():` — a bounded queue fed by the listeners; the oldest
    event is dropped when a slow reader lets it fill up."""

    def __init__(self, listeners: StateListeners, limit: int = MAX_QUEUED_EVENTS) -> None:
        self._queue: asyncio.Queue[ConnectionEvent] = asyncio.Queue(limit)
        self._unregister = listeners.add_event(self._put)

    def _put(self, event: ConnectionEvent) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[ConnectionEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ConnectionEvent]:
        try:
            while True:
                event = await self._queue.get()
                yield event
                if event.state.terminal:
                    return
        finally:
            self._unregister()


def _register(callbacks: list, callback: Callable) -> Callable[[], None]:  # type: ignore[type-arg]
    callbacks.append(callback)
    return lambda: callbacks.remove(callback) if callback in callbacks else None


def _call(callback: Callable, value: object) -> None:  # type: ignore[type-arg]
    try:
        callback(value)
    except Exception:  # a user's callback must not break the connection
        log.exception("state callback %r failed", callback)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
