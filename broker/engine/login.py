"""A login attempt: the wait a failing address earns, then the authenticator (broker/engine/auth.py).

Each failed login from an address doubles the time before that address's next attempt is
checked (from `failure_delay` up to `max_failure_delay`). Attempts made in parallel queue one
behind the other, each holding its slot for the current delay, so opening many connections at
once buys no more guesses; an attempt that would queue longer than the longest delay is refused
without being checked. An address is forgotten after FORGET_AFTER seconds without a failure or on
a successful login with credentials (an anonymous one proves nothing and resets nothing). The
table is bounded: past MAX_ADDRESSES the longest-quiet address is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from broker.engine.auth import Authenticator, Credentials, Principal, authenticate, host_of

MAX_ADDRESSES = 10_000
FORGET_AFTER = 900.0


@dataclass(slots=True)
class _Failures:
    count: int
    free_at: float  # when the next attempt from this address may be checked
    last: float


class LoginThrottle:
    def __init__(self, delay: float, max_delay: float, max_addresses: int = MAX_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.delay = delay
        self.max_delay = max_delay
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def _step(self, count: int) -> float:
        return min(self.max_delay, self.delay * 2.0 ** min(count - 1, 64))

    def admit(self, address: str) -> float | None:
        """Seconds to wait before checking this attempt (and take its slot), or None: refuse it."""
        entry = self._failures.get(address)
        now = self._clock()
        if entry is None:
            return 0.0
        if now - entry.last > FORGET_AFTER:
            del self._failures[address]
            return 0.0
        start = max(now, entry.free_at)
        if start - now > self.max_delay:
            return None
        entry.free_at = start + self._step(entry.count)
        return start - now

    def failed(self, address: str) -> None:
        now = self._clock()
        entry = self._failures.pop(address, None) or _Failures(0, now, now)
        entry.count += 1
        entry.last = now
        entry.free_at = max(entry.free_at, now + self._step(entry.count))
        self._failures[address] = entry  # newest last: the oldest is evicted first
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def __len__(self) -> int:
        return len(self._failures)


async def log_in(throttle: LoginThrottle, authenticator: Authenticator, credentials: Credentials,
                 who: str) -> Principal | None:
    """Wait the address's turn, ask the authenticator, and record the outcome."""
    address = host_of(credentials.peer)
    wait = throttle.admit(address)
    if wait is None:
        return None  # queued too deep behind this address's failures: refused unchecked
    if wait > 0:
        await asyncio.sleep(wait)
    principal = await authenticate(authenticator, credentials, who)
    if principal is None:
        throttle.failed(address)
    elif not principal.anonymous:
        throttle.succeeded(address)
    return principal
