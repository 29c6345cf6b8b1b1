"""Bounded work per turn of the event loop (issue 11, point 3).

One event loop serves every client, so a piece of work that runs long (draining a backlog to a fast
consumer, fanning a message out to a thousand subscribers) delays everyone else's frames by as
much. Such work runs in slices instead: it spends a `Budget` (`limits.work_slice_ms`), and when
the budget is gone it hands what is left to the broker's `Slicer`, which runs the leftovers of
every queue and topic round-robin, one budget per turn of the loop, and lets the loop read and
answer other clients in between.

Order is kept by the work itself: a queue or topic with leftovers does nothing new inline until
they are done (new messages wait behind them), so slicing changes when a delivery happens, never
its order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Protocol

log = logging.getLogger(__name__)


class Budget:
    """A deadline for one slice of work. Checking it reads the clock (tens of nanoseconds)."""

    __slots__ = ("deadline",)

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def spent(self) -> bool:
        return time.perf_counter() >= self.deadline


class Job(Protocol):
    def resume(self, budget: Budget) -> bool:
        """Do work until `budget` is spent; True if some is left (the job is then queued again)."""


class Slicer:
    """Leftover work, run round-robin in slices of `slice_seconds`, one slice per loop turn."""

    def __init__(self, slice_seconds: float) -> None:
        self.slice = slice_seconds
        self._jobs: deque[Job] = deque()
        self._queued: set[int] = set()  # id() of the jobs in _jobs: each is queued at most once
        self._handle: asyncio.Handle | None = None
        self._idle: asyncio.Event | None = None

    def budget(self) -> Budget:
        return Budget(self.slice)

    def defer(self, job: Job) -> None:
        """Resume `job` on a later turn (once, however often it is deferred before that)."""
        if id(job) in self._queued:
            return
        self._queued.add(id(job))
        self._jobs.append(job)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._run)
        if self._idle is not None:
            self._idle.clear()

    async def idle(self) -> None:
        """Return once no leftover work is queued (tests; a graceful stop)."""
        while self._jobs:
            if self._idle is None:
                self._idle = asyncio.Event()
            self._idle.clear()
            await self._idle.wait()

    def _run(self) -> None:
        self._handle = None
        budget = self.budget()
        # One pass at most: a job that is still busy goes to the back, behind the others, and the
        # next turn (after the loop has read the sockets) continues with whoever is at the front.
        for _ in range(len(self._jobs)):
            job = self._jobs.popleft()
            self._queued.discard(id(job))
            try:
                more = job.resume(budget)
            except Exception:  # a bug in one job must not stop the others (nor this loop)
                log.exception("deferred broker work failed")
                more = False
            if more:
                self.defer(job)
            if budget.spent():
                break
        if self._jobs:
            if self._handle is None:
                self._handle = asyncio.get_running_loop().call_soon(self._run)
        elif self._idle is not None:
            self._idle.set()
