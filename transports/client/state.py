"""Connection states a client user can observe, and the listeners that observe them."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    # The link is down. A plain tcp:// client goes on to CLOSED; the failover layer (next issue)
    # goes back to CONNECTING instead.
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


StateCallback = Callable[[ConnectionState], None]


class StateListeners:
    """The current state plus callbacks told of every change (in order, synchronously)."""

    __slots__ = ("_callbacks", "state")

    def __init__(self) -> None:
        self.state = ConnectionState.CONNECTING
        self._callbacks: list[StateCallback] = []

    def add(self, callback: StateCallback) -> Callable[[], None]:
        """Register `callback`; return a function that unregisters it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def set(self, state: ConnectionState) -> None:
        if state is self.state:
            return
        self.state = state
        for callback in list(self._callbacks):
            try:
                callback(state)
            except Exception:  # a user's callback must not break the connection
                log.exception("state callback %r failed", callback)
