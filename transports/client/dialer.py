"""Opening a STOMP session to one of the brokers a URL names.

For a plain tcp:// URL that is one try. For a failover: URL it is ActiveMQ's startup behaviour
(design.md section 5): passes over the brokers in `server_order`, a back-off delay (`next_delay`,
with a little jitter) between passes, and `startupMaxReconnectAttempts` (else
`maxReconnectAttempts`; -1 = for ever) failed passes before giving up. Re-dialling after an
established connection drops is the failover layer's job (next issue): it calls `dial(...,
ever_connected=True, avoid=<the broker that failed>)`.
"""

from __future__ import annotations

import asyncio
import logging
import random

from config.model import Limits
from transports.client.connection import StompConnection, open_stomp
from transports.client.errors import ConnectFailed, ConnectionLost
from transports.stomp.frame import ProtocolError
from transports.url import BrokerUrl, next_delay, reconnect_limit, server_order, with_jitter

log = logging.getLogger(__name__)

# Errors worth trying the next broker for. A CONNECT refused with ERROR (bad login) is not one:
# it would be refused again, so it propagates at once.
_RETRYABLE = (OSError, TimeoutError, ConnectionLost, ProtocolError)


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
        rng: random.Random | None = None,
    ) -> None:
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self.url = url
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

    async def dial(self, *, ever_connected: bool = False,
                   avoid: tuple[str, int] | None = None) -> StompConnection:
        options, limit = self.url.options, self._limit(ever_connected)
        failed_passes = 0
        while True:
            order = server_order(self.url.brokers, options, self._rng, avoid) if self.url.failover \
                else list(self.url.brokers)
            errors: list[str] = []
            for host, port in order:
                try:
                    return await open_stomp(host, port, **self._session_args)  # type: ignore[arg-type]
                except _RETRYABLE as exc:
                    errors.append(f"tcp://{_show(host)}:{port}: {exc or type(exc).__name__}")
                    log.debug("connect to %s:%d failed: %s", host, port, exc)
            failed_passes += 1
            if 0 <= limit <= failed_passes:
                raise ConnectFailed("cannot connect: " + "; ".join(errors))
            delay = with_jitter(next_delay(failed_passes, options), self._rng)
            log.info("no broker reachable (attempt %d): %s; retrying in %.3fs", failed_passes,
                     "; ".join(errors), delay)
            await asyncio.sleep(delay)


def _show(host: str) -> str:
    return f"[{host}]" if ":" in host else host
