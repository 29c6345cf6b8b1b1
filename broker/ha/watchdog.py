"""The lock-timeout watchdog: ends a term whose lease ran out, without touching the file system.

When the shared directory stops answering (a hard-mounted NFS server that is gone), the
keep-alive thread hangs in I/O and so may anything else that touches the directory, the event
loop included. This thread only reads a clock. Once no keep-alive check has succeeded for
lock_timeout it asks the loop to stop serving (`on_timeout`, thread-safe), and if the process
has not exited `exit_bound` seconds later it ends the process itself with `exit_code`: threads
stuck in I/O cannot be joined, but a process exit does not wait for them.

A process that was itself frozen (SIGSTOP, a paused VM) wakes with an old lease and says nothing
yet about the file system: then the keep-alive gets `grace` seconds to answer first. Until it
does, `Lease.valid()` is false, so the master answers nobody meanwhile.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

from broker.ha.lease import Lease

log = logging.getLogger("batonmq.watchdog")


class Watchdog:
    def __init__(
        self,
        lease: Lease,
        on_timeout: Callable[[str], None],
        exit_code: int,
        exit_bound: float,
        grace: float,
        tick: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        hard_exit: Callable[[int], None] = os._exit,
    ) -> None:
        self._lease = lease
        self._on_timeout = on_timeout
        self._exit_code = exit_code
        self._exit_bound = exit_bound
        self._grace = grace
        self._tick = tick
        self._clock = clock
        self._hard_exit = hard_exit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batonmq-watchdog", daemon=True)
        self.fired_at: float | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The term ended by other means: disarm. Once fired, the forced exit stays armed, since
        the normal exit itself may wait on threads stuck in I/O."""
        self._stop.set()

    def _run(self) -> None:
        last = self._clock()
        judge_after = last
        while True:
            if self._stop.wait(self._tick) and self.fired_at is None:
                return
            now = self._clock()
            if now - last > self._tick + self._grace:
                judge_after = now + self._grace  # we were frozen ourselves: let the keep-alive speak
            last = now
            if self.fired_at is None and now >= judge_after and self._lease.expired():
                self._fire(now)
            elif self.fired_at is not None and now - self.fired_at > self._exit_bound:
                self._force_exit()
                return

    def _fire(self, now: float) -> None:
        self.fired_at = now
        reason = (f"no lock check succeeded for {self._lease.age():.1f} s "
                  f"(lock_timeout {self._lease.duration:g} s): the shared file system is not answering")
        log.error("watchdog: %s; stopping", reason)
        self._on_timeout(reason)

    def _force_exit(self) -> None:
        # Threads stuck in file-system calls would keep a normal exit waiting forever.
        print(f"batonmq: watchdog: still running {self._exit_bound:g} s after the lock timeout; "
              f"stopped, exit {self._exit_code}", file=sys.stderr, flush=True)
        self._hard_exit(self._exit_code)
