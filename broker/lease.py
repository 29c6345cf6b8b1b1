"""The master's lease: how long a successful keep-alive lets it serve without re-checking.

A master that was paused (SIGSTOP, a VM freeze, a long GC) may have been deposed meanwhile.
Every externally visible act (CONNECTED, RECEIPT) asks `valid()`; within one keep-alive period of
the last successful check that is a clock read, past it the full check runs first, so a master
resumed after a pause proves it still holds the lock before it answers anyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Lease:
    def __init__(
        self, period: float, verify: Callable[[], None], clock: Callable[[], float] = time.monotonic
    ):
        self._period = period
        self._verify = verify
        self._clock = clock
        self._verified_at = float("-inf")
        self.lost: str | None = None

    def renew(self) -> None:
        """Run the full check (raises on failure) and extend the lease."""
        if self.lost is not None:
            raise LeaseLost(self.lost)
        try:
            self._verify()
        except Exception as exc:
            self.lost = str(exc) or type(exc).__name__
            raise
        self._verified_at = self._clock()

    def valid(self) -> bool:
        if self.lost is not None:
            return False
        if self._clock() - self._verified_at < self._period:
            return True
        try:
            self.renew()
        except Exception:
            return False
        return True

    def age(self) -> float:
        """Seconds since the last successful check (for metrics)."""
        return self._clock() - self._verified_at


class LeaseLost(Exception):
    pass
