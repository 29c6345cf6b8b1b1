"""Per-session ordered completion: frames finish in the order they arrived, store writes overlap.

A session does not wait for each persistent SEND's fsync before reading its next frame (that would
cap a producer at one message per fsync). It starts the write and queues a completion; completions
run strictly in arrival order (dispatch, then RECEIPT), each once its own write is done. The number
in flight is bounded: `room()` blocks the session's reader when the bound is reached, which in turn
fills the connection's frame queue and pauses reading from the socket.

A group commit makes hundreds of a producer's writes done at once; their completions (dispatch and
RECEIPT, tens of microseconds each) run for at most one slice (`limits.work_slice_ms`), and the rest
on the next turns of the loop, so that other clients are served in between (issue 11).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

Complete = Callable[[BaseException | None], None]


def _outcome(future: asyncio.Future[None] | None) -> BaseException | None:
    if future is None:
        return None
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()


class Completions:
    """Callback-driven rather than a task awaiting each write: the head's done-callback drains every
    completion that is ready, so a completion costs no task step and no `asyncio.wait` (which builds
    a set, a waiter future and two callbacks each time). This runs once per SEND."""

    def __init__(self, limit: int, slice_seconds: float = 0.002) -> None:
        self.limit = limit
        self.slice = slice_seconds
        self._later: asyncio.Handle | None = None  # the rest of a drain whose slice was spent
        self._pending: deque[tuple[asyncio.Future[None] | None, Complete]] = deque()
        self._waiting_on: asyncio.Future[None] | None = None  # the head's write, our callback on it
        self._draining = False  # a completion that adds another must not start a nested drain
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, future: asyncio.Future[None] | None, complete: Complete) -> None:
        """Run `complete(error or None)` once `future` is done and every earlier completion has run."""
        if not self._pending and (future is None or future.done()):
            self._run_one(future, complete)
            return
        self._pending.append((future, complete))
        self._idle.clear()
        if self._waiting_on is None and not self._draining and self._later is None:
            self._drain()

    def add_next(self, future: asyncio.Future[None], complete: Complete) -> None:
        """From inside a running completion: run `complete` once `future` is done, before every
        completion queued so far (the rest of the running one, e.g. its RECEIPT after a fan-out)."""
        self._pending.appendleft((future, complete))
        self._idle.clear()
        if self._waiting_on is None and not self._draining and self._later is None:
            self._drain()

    async def room(self) -> None:
        while len(self._pending) >= self.limit:
            self._room.clear()
            await self._room.wait()

    async def idle(self) -> None:
        await self._idle.wait()

    def _drain(self, _: object = None) -> None:
        self._waiting_on = self._later = None
        self._draining = True
        deadline = time.perf_counter() + self.slice
        try:
            while self._pending:
                future, complete = self._pending[0]
                if future is not None and not future.done():
                    self._waiting_on = future
                    future.add_done_callback(self._drain)
                    return
                if time.perf_counter() >= deadline:
                    self._later = asyncio.get_running_loop().call_soon(self._drain)
                    return
                self._pending.popleft()
                self._room.set()
                self._run_one(future, complete)
            self._idle.set()
        finally:
            self._draining = False

    @staticmethod
    def _run_one(future: asyncio.Future[None] | None, complete: Complete) -> None:
        try:
            complete(_outcome(future))
        except Exception:  # one broken completion must not stall the ones behind it
            log.exception("completion failed")

    def cancel(self) -> None:
        """Stop running completions (broker shutdown); what is pending stays unrun."""
        if self._waiting_on is not None:
            self._waiting_on.remove_done_callback(self._drain)
            self._waiting_on = None
        if self._later is not None:
            self._later.cancel()
            self._later = None
