"""Per-session ordered completion: frames finish in the order they arrived, store writes overlap.

A session does not wait for each persistent SEND's fsync before reading its next frame (that would
cap a producer at one message per fsync). It starts the write and queues a completion; completions
run strictly in arrival order (dispatch, then RECEIPT), each once its own write is done. The number
in flight is bounded: `room()` blocks the session's reader when the bound is reached, which in turn
fills the connection's frame queue and pauses reading from the socket.
"""

from __future__ import annotations

import asyncio
import logging
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
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending: deque[tuple[asyncio.Future[None] | None, Complete]] = deque()
        self._task: asyncio.Task[None] | None = None
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
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def room(self) -> None:
        while len(self._pending) >= self.limit:
            self._room.clear()
            await self._room.wait()

    async def idle(self) -> None:
        await self._idle.wait()

    async def _run(self) -> None:
        try:
            while self._pending:
                future, complete = self._pending[0]
                if future is not None and not future.done():
                    await asyncio.wait([future])
                self._pending.popleft()
                self._room.set()
                self._run_one(future, complete)
        finally:
            self._task = None
            if not self._pending:
                self._idle.set()

    @staticmethod
    def _run_one(future: asyncio.Future[None] | None, complete: Complete) -> None:
        try:
            complete(_outcome(future))
        except Exception:  # one broken completion must not stall the ones behind it
            log.exception("completion failed")

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
