"""The reconnecting part of a failover client: after a lost link, redial with back-off, then hand
the new connection back to the client, which replays its ledger on it.

The behaviour is nats.py's and ActiveMQ FailoverTransport's (shuffled broker order with the failed
broker last, exponential back-off with jitter and a cap, an attempt limit, a status for every
step), split into small parts: the pure decisions live in `replay.py` and `transports.url`
(`next_delay`, `server_order`, `reconnect_limit`), the passes over the brokers in `dialer.py`, and
this module only runs the one task that ties them together and the gate callers wait at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from transports.client.connection import StompConnection
from transports.client.dialer import Dialer
from transports.client.errors import ClientError, ClientTimeout
from transports.client.state import ConnectionEvent, ConnectionState, StateListeners

log = logging.getLogger(__name__)

STOP_TIMEOUT = 2.0


class ConnectionGate:
    """Where calls wait while a failover client has no connection: opened on CONNECTED, closed
    on a loss, and opened for good (with the error) when the client fails or closes."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self.error: ClientError | None = None

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        if self.error is None:
            self._open.clear()

    def fail(self, error: ClientError) -> None:
        if self.error is None:
            self.error = error
        self._open.set()

    async def wait(self, deadline: float | None, timeout_ms: int, why: Callable[[], str]) -> None:
        """Wait until open; raise ClientTimeout once the loop time passes `deadline` (None = never)."""
        if self._open.is_set():
            return
        loop = asyncio.get_running_loop()
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise ClientTimeout(f"no broker connection within timeout={timeout_ms} ms ({why()})")
        try:
            async with asyncio.timeout(remaining):
                await self._open.wait()
        except TimeoutError:
            raise ClientTimeout(f"no broker connection within timeout={timeout_ms} ms ({why()})") from None


class Reconnector:
    """Runs at most one reconnect task. `attach(conn)` is called with the new connection;
    `give_up(error)` when the attempts are spent (ReconnectFailed) or the broker refused us."""

    def __init__(self, dialer: Dialer, states: StateListeners, attach: Callable[[StompConnection], None],
                 give_up: Callable[[ClientError], None]) -> None:
        self._dialer = dialer
        self._states = states
        self._attach = attach
        self._give_up = give_up
        self._task: asyncio.Task[None] | None = None
        self.lost_at: float | None = None
        self.last_outage: float | None = None  # seconds from the loss to the new CONNECTED

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, avoid: tuple[str, int] | None) -> None:
        if self.running:
            return
        self.lost_at = asyncio.get_running_loop().time()
        self._task = asyncio.ensure_future(self._run(avoid))

    async def _run(self, avoid: tuple[str, int] | None) -> None:
        try:
            conn = await self._dialer.dial(ever_connected=True, avoid=avoid, on_attempt=self._attempt)
        except ClientError as exc:
            # ReconnectFailed, or a CONNECT refused with ERROR (it would be refused again).
            self._give_up(exc)
            return
        if self._states.state.terminal:  # closed by the user while we dialled
            await conn.close()
            return
        if self.lost_at is not None:
            self.last_outage = asyncio.get_running_loop().time() - self.lost_at
        self._attach(conn)

    def _attempt(self, attempt: int, delay: float) -> None:
        self._states.emit(ConnectionEvent(ConnectionState.RECONNECTING, attempt=attempt, delay=delay))
        if attempt > 1:
            log.info("reconnecting: attempt %d in %.3fs", attempt, delay)

    async def stop(self) -> None:
        """Cancel a reconnect in progress and wait (bounded) for it to finish."""
        task, self._task = self._task, None
        if task is None or task.done() or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, STOP_TIMEOUT)
