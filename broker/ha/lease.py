"""The master's lease: how long after its last good keep-alive check a master may still answer.

Every externally visible act (CONNECTED, RECEIPT) asks `valid()`, which is a clock read and never
I/O: the keep-alive thread renews the lease after each fully successful check, with the time at
which that check *began*. The lease lasts `lock_timeout`; a waiting slave stays quiet for longer
than that (docs/lock-protocol.md, "The arithmetic"), so a master that was paused, or whose file
system stopped answering, has stopped answering clients before a successor binds.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Lease:
    def __init__(self, duration: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.duration = duration
        self._clock = clock
        self._verified_at = float("-inf")
        self.lost: str | None = None

    def renew(self, checked_at: float) -> None:
        """A check that began at `checked_at` (monotonic) proved the lock ours."""
        if self.lost is None and checked_at > self._verified_at:
            self._verified_at = checked_at

    def valid(self) -> bool:
        return self.lost is None and self._clock() - self._verified_at < self.duration

    def expired(self) -> bool:
        """Not lost, but no check has succeeded for the whole lease."""
        return self.lost is None and not self.valid()

    def age(self) -> float:
        """Seconds since the last successful check began (for metrics and the watchdog)."""
        return self._clock() - self._verified_at
