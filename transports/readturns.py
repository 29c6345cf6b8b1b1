"""How many bulk bytes all connections together may read in one turn of the event loop.

A connection that sends a large frame delivers reads of up to the transport's read buffer (uvloop:
256 KiB) each, and every one costs an allocation, a copy and page faults before the parser sees it.
Each connection already parses at most FEED_TURN per turn, but a hundred of them streaming large
frames at once were read in the same turn: 6-21 MB, 30-90 ms, and every other client's RECEIPT
waited behind it (issue 11, "parked frames"). So the loop keeps one allowance, READ_TURN bytes a
turn, for *bulk* reads (BULK_READ bytes or more). A connection whose bulk read finds the allowance
spent stops reading its socket and waits in line; each later turn lets the first few in line
read again, as many as the allowance holds. Small reads (a well-behaved client's frames, its
heart-beats) are never counted and never wait.

One ReadTurns per event loop (`turns_for`), shared by every connector on it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from weakref import WeakKeyDictionary

READ_TURN = 1024 * 1024  # bulk bytes read per turn by all connections together (about a millisecond)
BULK_READ = 64 * 1024  # a read at least this large counts; smaller ones never wait
TYPICAL_READ = 256 * 1024  # what one resumed bulk reader is expected to read in its turn


class ReadTurns:
    def __init__(self, loop: asyncio.AbstractEventLoop, per_turn: int = READ_TURN) -> None:
        self._loop = loop
        self.per_turn = per_turn
        self._spent = 0
        self._turn_scheduled = False
        self._waiting: deque[Callable[[], None]] = deque()  # resume callbacks, first come first served
        self.deferred = 0  # bulk readers sent to wait, since start (batonmq_bulk_reads_deferred_total)

    def spend(self, size: int) -> bool:
        """Count a read of `size` bytes; False if it was bulk and this turn's allowance is spent."""
        if size < BULK_READ:
            return True
        self._spent += size
        self._schedule()
        return self._spent <= self.per_turn

    def may_read(self) -> bool:
        """Whether a bulk reader may resume at once: the allowance is not spent, nobody waits."""
        return not self._waiting and self._spent < self.per_turn

    def wait(self, resume: Callable[[], None]) -> None:
        """Call `resume` on a later turn, in line after those already waiting."""
        self.deferred += 1
        self._waiting.append(resume)
        self._schedule()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _schedule(self) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            self._loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """A new turn: a fresh allowance, and the first in line read again while it lasts."""
        self._turn_scheduled = False
        self._spent = 0
        waiting = self._waiting
        expected = 0
        while waiting and expected < self.per_turn:
            waiting.popleft()()
            expected += TYPICAL_READ
        if waiting:
            self._schedule()


_PER_LOOP: WeakKeyDictionary[asyncio.AbstractEventLoop, ReadTurns] = WeakKeyDictionary()


def turns_for(loop: asyncio.AbstractEventLoop) -> ReadTurns:
    """The event loop's one ReadTurns, made on first use."""
    turns = _PER_LOOP.get(loop)
    if turns is None:
        turns = _PER_LOOP[loop] = ReadTurns(loop)
    return turns
