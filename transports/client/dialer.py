"""Opening a STOMP session to one of the brokers a URL names (over TLS for its ssl:// ones).

For a plain tcp:// or ssl:// URL that is one try. For a failover: URL it is ActiveMQ's startup behaviour
(design.md section 5): passes over the brokers in `server_order`, a back-off delay (`next_delay`,
with a little jitter) between passes, and `startupMaxReconnectAttempts` (else
`maxReconnectAttempts`; -1 = for ever) failed passes before giving up. After an established
connection drops, the failover layer calls `dial(ever_connected=True, avoid=<the broker that
failed>)`: the limit is then `maxReconnectAttempts` and the failed broker is tried last.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable

from config.model import Limits
from transports.client.connection import StompConnection, open_stomp
from transports.client.errors import ConnectFailed, ConnectionLost, ReconnectFailed
from transports.stomp.frame import ProtocolError
from transports.url import BrokerUrl, FailoverOptions, next_delay, reconnect_limit, server_order, with_jitter

log = logging.getLogger(__name__)

# Errors worth trying the next broker for. A CONNECT refused with ERROR (bad login) is not one:
# it would be refused again, so it propagates at once.
_RETRYABLE = (OSError, TimeoutError, ConnectionLost, ProtocolError)

AttemptCallback = Callable[[int, float], None]


class Dialer:
    def __init__(
        self,
        url: BrokerUrl,
        *,
        login: str | None = None,
        passcode: str | None = None,
        heartbeat: tuple[int, int] = (0, 0),
        client_id: str | None = None,
        connect_timeout: float = 5.0,
        limits: Limits | None = None,
        tls: ssl.SSLContext | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self.url = url
        # The URL's ssl:// brokers are dialled with this context; the system's CAs if none is given.
        self._tls = tls if tls is not None or not url.tls else ssl.create_default_context()
        self._session_args = {"login": login, "passcode": passcode, "heartbeat": heartbeat,
                              "client_id": client_id, "timeout": connect_timeout, "limits": limits}
        self._rng = rng or random.Random()

    async def __call__(self) -> StompConnection:
        return await self.dial()

    def _limit(self, ever_connected: bool) -> int:
        if not self.url.failover:
            return 1
        limit = reconnect_limit(self.url.options, ever_connected)
        # ActiveMQ counts failed passes and gives up once they reach the limit: 0 still tries once.
        return limit if limit < 0 else max(limit, 1)

    async def dial(self, *, ever_connected: bool = False, avoid: tuple[str, int] | None = None,
                   on_attempt: AttemptCallback | None = None) -> StompConnection:
        """Pass over the brokers until one accepts. Before each pass `on_attempt(n, delay)` hears
        the pass number and the back-off slept before it. Gives up after the attempt limit with
        ConnectFailed (at startup) or ReconnectFailed (after a connection was lost)."""
        options, limit = self.url.options, self._limit(ever_connected)
        tried: dict[str, None] = {}
        last_error: str | None = None
        attempt = 0
        while True:
            attempt += 1
            delay = pass_delay(attempt, options, self._rng) if self.url.failover else 0.0
            if on_attempt is not None:
                on_attempt(attempt, delay)
            if delay:
                await asyncio.sleep(delay)
            order = server_order(self.url.brokers, options, self._rng, avoid) if self.url.failover \
                else list(self.url.brokers)
            errors: list[str] = []
            for host, port in order:
                name = f"{self.url.scheme((host, port))}://{_show(host)}:{port}"
                tried[name] = None
                tls = self._tls if (host, port) in self.url.tls else None
                try:
                    return await open_stomp(host, port, tls=tls, **self._session_args)  # type: ignore[arg-type]
                except _RETRYABLE as exc:
                    last_error = f"{name}: {exc or type(exc).__name__}"
                    errors.append(last_error)
                    log.debug("connect to %s:%d failed: %s", host, port, exc)
            if 0 <= limit <= attempt:
                raise _give_up(ever_connected, attempt, tuple(tried), last_error, errors)
            log.log(logging.DEBUG if ever_connected else logging.INFO, "no broker reachable (attempt %d): %s",
                    attempt, "; ".join(errors))


def pass_delay(attempt: int, options: FailoverOptions, rng: random.Random) -> float:
    """Seconds to sleep before pass `attempt` (1-based): none before the first, then ActiveMQ's
    back-off for the passes failed so far, scattered a little so clients do not return in step."""
    return with_jitter(next_delay(attempt - 1, options), rng) if attempt > 1 else 0.0


def _give_up(ever_connected: bool, attempts: int, tried: tuple[str, ...], last_error: str | None,
             errors: list[str]) -> ConnectFailed:
    if not ever_connected:
        return ConnectFailed("cannot connect: " + "; ".join(errors))
    return ReconnectFailed(
        f"gave up reconnecting after {attempts} attempt(s) over {', '.join(tried)}; last error: {last_error}",
        brokers=tried, last_error=last_error, attempts=attempts)


def _show(host: str) -> str:
    return f"[{host}]" if ":" in host else host
