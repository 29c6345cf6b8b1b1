"""The master's keep-alive: a thread of its own asks every period whether the lock is still ours.

Two questions, kept apart (docs/lock-protocol.md, "Two questions"):

* *Is the lock still ours?* `check()` raises LockLost on any "no" (released, lock file deleted or
  replaced, another identity in it, another epoch, another master's heartbeat): lost at once.
* *Is the file system answering?* An I/O error (LockUnanswered) or a slow check is no answer,
  not a loss: the lease is simply not renewed, and the watchdog (broker.ha.watchdog) ends the term
  once no check has succeeded for lock_timeout.

The thread runs beside the event loop, so a busy loop never delays a check, and a hung check
never blocks the loop. It reports only through `on_lost`, which must be thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from broker.ha.lease import Lease
from stores.lock.identity import LockLost

log = logging.getLogger("batonmq.keepalive")


class KeepAliveThread:
    def __init__(
        self,
        check: Callable[[], None],
        lease: Lease,
        period: float,
        on_lost: Callable[[str], None],
        name: str = "batonmq-keepalive",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._lease = lease
        self._period = period
        self._on_lost = on_lost
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._failing_since: float | None = None  # when checks began to fail or run slow
        self.checks = 0
        self.unanswered = 0  # checks that failed with an I/O error
        self.slow = 0  # checks that succeeded but took longer than one period

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop after its current check; does not wait (it may be stuck in I/O)."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; False if it is still inside a check (a hung file system)."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            if not self._once(started):
                return
            self._stop.wait(max(0.0, started + self._period - self._clock()))

    def _once(self, started: float) -> bool:
        """One check; False once the lock is known lost."""
        self.checks += 1
        try:
            self._check()
        except LockLost as exc:
            if not self._stop.is_set():
                self._on_lost(exc.reason)
            return False
        except Exception as exc:  # LockUnanswered, OSError, anything: no answer, not a "no"
            self.unanswered += 1
            self._note_trouble(started, f"lock check failed: {exc}")
            return True
        self._lease.renew(started)
        took = self._clock() - started
        if took > self._period:
            self.slow += 1
            self._note_trouble(started, f"lock check took {took:.2f} s (period {self._period:g} s)")
        elif self._failing_since is not None:
            log.warning("keep-alive: lock checks answer in time again, after %.1f s",
                        self._clock() - self._failing_since)
            self._failing_since = None
        return True

    def _note_trouble(self, started: float, what: str) -> None:
        # Once per episode: a slow disk under load would otherwise fill the log.
        if self._failing_since is None:
            self._failing_since = started
            log.warning("keep-alive: %s; still master until no check succeeds for %.1f s "
                        "(last success %.1f s ago)", what, self._lease.duration, self._lease.age())
