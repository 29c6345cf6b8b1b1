"""Spilling: messages the store does not hold, beyond a queue's memory window, go to the temporary store.

With `limits.non_persistent = "spill"`, a master gives a `Spill` to each `/queue/` destination,
temporary queue and durable topic subscription (docs/paging.md, "The temporary store"); a
non-durable topic subscriber has none: a slow one loses its oldest messages instead (topic.py). A
durable subscription's copies come from the topic's fan-out, the others' from the SEND path, both
through `Queue.arrive`, which asks `Spill.takes`. A queue's non-persistent messages spill; so do a
temporary queue's persistent ones, which the store never holds (tempdest.py), so that without this
its backlog would be bounded by memory alone. A spilled message's record keeps the headers it was
sent with, `persistent` among them, from which it is persistent again when read back. Below,
"non-persistent" includes those of a temporary queue.

A non-persistent message that arrives while the queue's window has no room (the same test as a
persistent message's paging: cursor.py `page_next`), or while older non-persistent messages of the
queue are spilled, is written to the temporary store (stores/temp) and only its record's location
is kept (12 bytes, stores/temp/fifo.py); the body is dropped once written. A reader reads spilled
messages back in the order they arrived, a page at a time, as the window drains, with the same
low-water mark and selector read-on as the store cursor. Each record is released as soon as it is
back in memory (or dropped), and a segment file goes with its last record. Whatever drops a queue's
waiting messages (purge and delete, a durable subscription dropped or replaced, a temporary queue's
end) calls `clear()`, which releases its records at once. An operator may take one out from the
middle (admin remove or move): its entry is marked dead (stores/temp/fifo.py) and its record
released (once written).

Order. Non-persistent messages of a queue are spilled and read back first in, first out, and once one
is spilled every later one is too until the spill is empty (the cursor's suffix rule), so they keep
their arrival order among themselves. Spilled non-persistent and paged persistent messages are read
back by two readers, each in its own order: between the two, only what is in memory at the same
time is in priority-then-arrival order (as ActiveMQ's store cursor, which keeps them apart too).

Limits. The temporary store's bytes are a `Share` with `limits.temp_usage` as its limit, and the
bytes placed but not yet written one with WRITE_AHEAD: flow.py holds a producer on whichever is
full, then refuses it naming limits.temp_usage, as it does at the memory limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING

from broker.engine.cursor import MAX_PAGE, STALL_FACTOR
from broker.engine.message import Message, from_stored, is_persistent
from stores.base import StoreCorrupted, StoredMessage, StoreError
from stores.reads import Location
from stores.temp.fifo import LocationFifo
from stores.temp.files import TempStore
from transports.memory import Share

if TYPE_CHECKING:
    from broker.engine.queue import Queue

log = logging.getLogger(__name__)

MiB = 1024 * 1024
WRITE_AHEAD = 8 * MiB  # bytes spilled but not yet written (held in memory meanwhile), broker-wide
_FIRST_GUESS = 1024
Read = StoredMessage | StoreCorrupted | StoreError  # what one record read gave


class TempSpace:
    """The broker's temporary store, and its limits as shares that flow control can wait on."""

    def __init__(self, store: TempStore, limit: int) -> None:
        self.store = store
        self.usage = Share("the temporary store", limit, None, "limits.temp_usage")
        self.writes = Share("temporary store writes under way", WRITE_AHEAD, None, "limits.temp_usage")
        store.on_change = self._sync

    @property
    def failed(self) -> bool:
        return self.store.failed is not None or self.store.closed

    def blocked(self, size: int) -> Share | None:
        """The share `size` more spilled bytes would overrun, or None. Writes under way block only
        once there are some: one message larger than WRITE_AHEAD still goes."""
        if self.writes.used and self.writes.blocked(size) is not None:
            return self.writes
        return self.usage.blocked(size)

    def append(self, message: Message) -> tuple[Location, asyncio.Future[None]]:
        placed = self.store.append(message.to_stored())
        self._sync()
        return placed

    def release(self, locations: list[Location]) -> None:
        self.store.release(locations)

    def _sync(self) -> None:
        self.usage.set(self.store.bytes)  # a release wakes producers held on it
        self.writes.set(self.store.unwritten)


class Spill:
    __slots__ = ("queue", "space", "window", "persistent", "fifo", "pending", "kept", "taken", "spilled",
                 "lost", "reads", "_task", "_reading", "_average", "_generation", "_holds")

    def __init__(self, queue: Queue, space: TempSpace, window: int, persistent: bool = False) -> None:
        self.queue = queue
        self.space = space
        self.window = window
        # Persistent messages spill too: a temporary queue's, which the store never holds.
        self.persistent = persistent
        # Per spilled message only its record's location, 12 bytes (stores/temp/fifo.py); by its
        # sequence number, the few messages still in memory:
        self.fifo = LocationFifo()
        self.pending: dict[int, Message] = {}  # write under way (bounded by WRITE_AHEAD)
        self.kept: dict[int, Message] = {}  # write failed: delivered from memory, record released
        self.taken: set[int] = set()  # back in memory (or dropped) before the write finished
        self.spilled = 0  # messages spilled, ever (stats)
        self.lost = 0  # records that could not be read back (logged; counted as discarded)
        self.reads = 0
        self._task: asyncio.Task[None] | None = None
        self._reading = 0  # messages taken by the read under way (still part of queue.depth)
        self._average = _FIRST_GUESS
        self._generation = 0  # bumped by clear(): a read under way then drops what it read
        self._holds = 0  # admin operations looking for spilled messages themselves

    @property
    def count(self) -> int:
        """Spilled messages not in memory (part of the queue's depth)."""
        return len(self.fifo) + self._reading

    def busy(self) -> bool:
        return bool(self.fifo) or self._task is not None

    # -- spilling ------------------------------------------------------------------------------------

    def takes(self, message: Message) -> bool:
        """Would this message arriving now be spilled? (Queue.arrive, and flow control before it.)"""
        return (self.persistent or not message.persistent) and self.wants(message.size)

    def wants(self, size: int) -> bool:
        """Would a message of `size` bytes this spill takes, arriving now, be spilled?"""
        if self.space.failed:
            # The temporary store failed (or closed): memory and its flow control, as without one;
            # those still spilled come back after, so order holds no more (docs/paging.md).
            return False
        if self.fifo or self._task is not None:
            return True  # behind spilled ones: in order
        memory = self.queue.memory
        used = memory.used
        return used > 0 and (used + size > self.window or memory.blocked(size) is not None)

    def add(self, message: Message) -> None:
        location, written = self.space.append(message)
        seq = self.fifo.append(location)
        self.pending[seq] = message
        self.spilled += 1
        queue = self.queue
        queue.depth += 1
        queue.enqueued += 1
        written.add_done_callback(functools.partial(self._written, seq, location))

    def _written(self, seq: int, location: Location, done: asyncio.Future[None]) -> None:
        failed = done.cancelled() or done.exception() is not None
        if seq in self.taken:  # back in memory already: the record is not needed
            self.taken.discard(seq)
            self.space.release([location])
            return
        message = self.pending.pop(seq, None)  # written: the body goes
        if failed and message is not None:
            self.kept[seq] = message  # delivered from memory when its turn comes
            self.space.release([location])

    # -- reading back --------------------------------------------------------------------------------

    def need(self, stalled: bool = False) -> None:
        """Start a read if messages are spilled and the window is below its low-water mark (as
        Cursor.need); `stalled`: nothing in memory matches a ready consumer, read on."""
        if self._task is not None or not self.fifo or self._holds:
            return
        used = self.queue.memory.used
        ceiling = self.window * (STALL_FACTOR if stalled else 1)
        room = (ceiling - used) // self._average
        if room <= 0 or (not stalled and room < MAX_PAGE and used > self.window // 2):
            return
        count = max(1, min(MAX_PAGE, len(self.fifo), room))
        batch = self.fifo.popleft(count)
        held = [self._held(seq) for seq, _ in batch]  # in memory still: not read from the file
        locations = [location for (_, location), message in zip(batch, held, strict=True) if message is None]
        self._reading = count
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._read(locations, held, self._generation),
                                      name=f"spill-in {self.queue.name}")

    def _held(self, seq: int) -> Message | None:
        message = self.pending.pop(seq, None)
        if message is not None:
            self.taken.add(seq)  # its record is released when the write finishes
            return message
        return self.kept.pop(seq, None)

    async def _read(self, locations: list[Location], held: list[Message | None], generation: int) -> None:
        try:
            got: list[Read] = []
            if locations:
                got.extend(await self.space.store.read(locations))
        except StoreError as exc:
            got = [exc] * len(locations)
        finally:
            self._task = None
            self._reading = 0
        self.space.release(locations)
        if generation != self._generation:
            return  # cleared meanwhile (purged, deleted): counted out already
        self.reads += 1
        messages = self._messages(held, iter(got))
        if messages:
            self._average = max(64, sum(m.size for m in messages) // len(messages))
        queue = self.queue
        queue.page_in(messages)
        queue.dispatch()
        self.need()

    def _messages(self, held: list[Message | None], got: Iterator[Read]) -> list[Message]:
        out: list[Message] = []
        queue = self.queue
        for message in held:
            if message is not None:
                out.append(message)
                continue
            stored = next(got)
            if isinstance(stored, StoredMessage):
                out.append(_message(stored))
                continue
            self.lost += 1
            queue.depth -= 1
            queue.discarded += 1
            log.error("queue %s: a spilled message could not be read back, dropped: %s", queue.name, stored)
        return out

    async def peek(self, skip: int, count: int) -> list[Message]:
        """Spilled messages `skip` .. `skip + count` in the order they will come back, left where they
        are (an admin browse). One read back into memory meanwhile is left out: it is browsed there."""
        return [message for _, message in await self.look(self.entries(skip, count))]

    def entries(self, skip: int, count: int) -> list[tuple[int, Location]]:
        """Spilled entries `skip` .. `skip + count` from the oldest, as (sequence number, location)."""
        return self.fifo.peek(skip, count)

    def index(self, seq: int) -> int:
        """Where the entry with sequence number `seq` (or the first after it) now is, from the oldest:
        a scan by sequence number survives read-backs and removals meanwhile."""
        return self.fifo.index(seq)

    async def look(self, entries: list[tuple[int, Location]]) -> list[tuple[int, Message]]:
        """The messages of these entries, left where they are; one whose record is gone (its segment
        went with a read-back meanwhile) is left out."""
        held = [self.pending.get(seq) or self.kept.get(seq) for seq, _ in entries]
        wanted = [location for (_, location), message in zip(entries, held, strict=True) if message is None]
        got = iter(await self.space.store.read(wanted) if wanted else [])
        out: list[tuple[int, Message]] = []
        for (seq, _), message in zip(entries, held, strict=True):
            if message is None:
                stored = next(got)
                if not isinstance(stored, StoredMessage):
                    continue
                message = _message(stored)
            out.append((seq, message))
        return out

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """No read-back while the caller looks for spilled messages and takes some out (admin)."""
        self._holds += 1
        try:
            while self._task is not None:  # a read under way lands first
                await asyncio.sleep(0.001)
            yield
        finally:
            self._holds -= 1
            self.need()

    def take(self, seqs: Iterable[int]) -> set[int]:
        """Take these spilled messages out from wherever they wait (admin remove, move): the reader
        skips them and their records are released. Those that were still spilled."""
        taken = self.fifo.remove(seqs)
        dead: list[Location] = []
        for seq, location in taken:
            if self.pending.pop(seq, None) is not None:
                self.taken.add(seq)  # its record is released when the write finishes
            elif self.kept.pop(seq, None) is None:
                dead.append(location)  # written: released now (a kept one's was already)
        self.space.release(dead)
        self.queue.depth -= len(taken)
        return {seq for seq, _ in taken}

    def clear(self) -> int:
        """Drop every spilled message (purge, delete); return how many."""
        n = self.count
        entries = self.fifo.clear()
        dead = [location for seq, location in entries if self._held(seq) is None]
        self._generation += 1
        self._reading = 0
        self.space.release(dead)
        self.queue.depth -= n
        return n

    def stats(self) -> dict[str, int]:
        return {"spilled": self.count}


def _message(stored: StoredMessage) -> Message:
    """A spilled message read back: never delivered before (a delivered message is held in memory
    until settled), in the store nowhere, and persistent as it was sent (a temporary queue's may be:
    the record keeps the headers its flag was read from at SEND)."""
    message = from_stored(stored, redelivered=False, copy=False)
    message.persistent = is_persistent(message.headers)
    message.stored = False
    return message
