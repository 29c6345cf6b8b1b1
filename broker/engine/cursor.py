"""The store cursor: a durable queue keeps only a window of its persistent messages in memory.

A queue with `durable=True` on a broker with a store owns a `Cursor` (docs/paging.md). About
`store.cursor_window` bytes of waiting messages are in memory; a persistent message that arrives
while the window is full, or while older messages are still in the store only, is *paged*: it is
counted (`paged`, and in the queue's `depth`) and its body is dropped once written. A reader task
reads paged messages back in store order with `Store.read_batch` as the window drains.

The ordering rule. Whether a message goes to memory or to the store is decided when its store
write is *started* (`decide`, called by the SEND, COMMIT, dead-letter and admin paths right after
`Broker.write`), because writes are queued in call order: decisions are then made in store order,
which a reader that reads "after position P" relies on. Route order (when the message is put in)
differs across sessions and would make the reader skip or duplicate messages. Once a paged
decision is made every later decision is paged too, until the reader has read all of them; so a
paging run is always a suffix of the queue in store order. The reader reads after the highest
position of the messages decided for memory (`after`), and only once none of those is still on its
way in (`unrouted`), so nothing decided for memory is ever read twice, and nothing paged is missed.

The window is the queue's share of undelivered bytes (`Queue.memory.used`, non-persistent ones
too). The reader refills as soon as a full page (MAX_PAGE messages) fits, or below half the window
when the window is smaller than a page: so with the default 4 MiB window a read is nearly always
under way while a consumer drains. Pages are bounded by count and, through the average message size
seen, by bytes. When a consumer's selector matches nothing in a full window, the
reader reads on past the window, up to `STALL_FACTOR` windows: beyond that, matching messages
further back wait until the window moves (docs/paging.md "Limits").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from broker.engine.message import Message, from_stored
from stores.base import Page, Store, StoredMessage, StoreError

if TYPE_CHECKING:
    from broker.engine.queue import Queue

log = logging.getLogger(__name__)

MAX_PAGE = 512  # messages per read_batch (larger pages read no faster per message)
STALL_FACTOR = 2  # windows a queue may hold while no consumer matches what is in memory
_FIRST_GUESS = 1024  # bytes per message before any was read
HOLD_WAIT = 5.0  # seconds an admin operation waits for messages on their way in


class CursorOwner(Protocol):
    store: Store | None  # None on a hot standby (counts only) until it is adopted

    @property
    def id_prefix(self) -> str:
        """Ids this broker made start with it: messages stored during this open."""


class Cursor:
    __slots__ = ("queue", "owner", "window", "paged", "pending", "unrouted", "reserved", "after", "arrived",
                 "stopped", "reads", "_task", "_average", "_holds")  # one per durable queue

    def __init__(self, queue: Queue, owner: CursorOwner, window: int) -> None:
        self.queue = queue
        self.owner = owner
        self.window = window
        self.paged = 0  # written, in the store only (part of queue.depth); briefly < 0, see _read
        self.pending = 0  # paged decisions whose write has not finished
        self.unrouted = 0  # memory decisions not put in yet: the reader waits for them
        self.reserved = 0  # their bytes, counted against the window
        self.after: int | None = None  # the store position the reader reads after
        self.arrived = 0  # paged messages written, ever (the short-page rule in _read)
        self.stopped = False  # the store failed under us: read no more
        self.reads = 0  # pages read (for tests and stats)
        self._task: asyncio.Task[None] | None = None
        self._average = _FIRST_GUESS
        self._holds = 0  # admin operations reading the paged messages themselves

    @property
    def paging(self) -> bool:
        return self.paged > 0 or self.pending > 0

    def busy(self) -> bool:
        """Messages on their way in or out of the store: the queue must not be collected."""
        return self.paging or self.unrouted > 0 or self._task is not None

    # -- decisions (in store order) ------------------------------------------------------------------

    def decide(self, message: Message, write: asyncio.Future[None]) -> bool:
        """The message's write to this queue was just started: True if it is paged (stays in the
        store only; route() must not put it in), False if it goes to memory (route() puts it)."""
        size = message.size
        if self.page_next(size):
            self.pending += 1
            write.add_done_callback(self._paged_written)
            return True
        self.unrouted += 1
        self.reserved += size
        write.add_done_callback(functools.partial(self._memory_written, size))
        return False

    def page_next(self, size: int) -> bool:
        """Would a message of `size` bytes arriving now be paged? (Once per persistent SEND.)"""
        if self.paged > 0 or self.pending > 0:
            return True
        memory = self.queue.memory
        used = memory.used + self.reserved
        # An empty window takes any message: no disk round trip for it.
        return used > 0 and (used + size > self.window or memory.blocked(size) is not None)

    def _paged_written(self, done: asyncio.Future[None]) -> None:
        self.pending -= 1
        if not done.cancelled() and done.exception() is None:
            self.counted()
        self.need()

    def _memory_written(self, size: int, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is not None:  # never routed: the reader must not wait
            self.unrouted -= 1
            self.reserved -= size
            self.need()

    def counted(self, n: int = 1) -> None:
        """`n` messages are in the store under this queue and not in memory (also recovery's
        tail beyond the head, and the hot standby's count-only add)."""
        self.paged += n
        self.arrived += n
        queue = self.queue
        queue.depth += n
        queue.enqueued += n

    def routed(self, message: Message) -> None:
        """A message decided for memory was put in: the reader reads after it."""
        if self.unrouted > 0:  # else decided by a queue of the same name that was deleted meanwhile
            self.unrouted -= 1
            self.reserved -= message.size
        self.track(message)
        if self.paged > 0:
            self.need()

    def track(self, message: Message) -> None:
        store = self.owner.store
        if store is None:
            return
        try:
            position = store.position(self.queue.name, message.message_id)
        except StoreError:
            return  # closed or fenced: nothing will be read any more
        if position is not None and (self.after is None or position > self.after):
            self.after = position

    def uncount(self, n: int = 1) -> None:
        """`n` paged messages left the store without being read (standby removal, admin)."""
        self.paged -= n
        self.queue.depth -= n

    def clear(self) -> None:
        """Every stored message of the queue is gone (its subscription dropped)."""
        self.queue.depth -= max(0, self.paged)
        self.paged = 0
        self.stopped = True

    # -- reading -------------------------------------------------------------------------------------

    def need(self, stalled: bool = False) -> None:
        """Start a read if messages are paged and the window is below its low-water mark (room for a
        full page, or half the window);
        `stalled`: nothing in memory matches a ready consumer, so read on up to STALL_FACTOR windows."""
        if self._task is not None or self.paged <= 0 or self.unrouted or self.stopped or self._holds:
            return
        if self.owner.store is None:
            return
        used = self.queue.memory.used
        ceiling = self.window * (STALL_FACTOR if stalled else 1)
        room = (ceiling - used) // self._average  # messages that fit
        # Low water: read once a full page fits, or the window is half empty (a small window).
        if room <= 0 or (not stalled and room < MAX_PAGE and used > self.window // 2):
            return
        count = max(1, min(MAX_PAGE, self.paged, room))
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._read(count), name=f"page-in {self.queue.name}")

    async def _read(self, count: int) -> None:
        store, queue = self.owner.store, self.queue
        assert store is not None
        base = self.arrived
        try:
            page = await store.read_batch(queue.name, self.after, count)
        except StoreError as exc:  # closed, fenced or damaged: a fenced broker stops anyway
            log.error("queue %s: reading paged messages failed, %d left in the store: %s",
                      queue.name, self.paged, exc)
            self.stopped = True
            return
        finally:
            self._task = None
        if self.stopped:
            return  # cleared while reading (its subscription dropped): nothing is waiting any more
        self.reads += 1
        self.after = page.next
        stored = page.messages
        # A message may be read before its write's callback counted it: paged dips below 0 for that
        # moment and the callback brings it back.
        self.paged -= len(stored)
        if len(stored) < count:
            # The store had nothing more when read (contract): what is still paged arrived since.
            # Messages removed behind our back are forgotten here instead of read for ever.
            gone = self.paged - min(self.paged, self.arrived - base)
            if gone > 0:
                log.warning("queue %s: %d paged messages were no longer stored", queue.name, gone)
                self.uncount(gone)
        if stored:
            self._average = max(64, sum(len(m.body) for m in stored) // len(stored) + 256)
            prefix = self.owner.id_prefix
            queue.page_in([self._message(m, prefix) for m in stored])
        queue.dispatch()
        self.need()

    def _message(self, stored: StoredMessage, prefix: str | None = None) -> Message:
        # Stored before this open (recovery, a takeover): possibly delivered already. One of ours
        # was never delivered: a message that was is held in memory until it is settled.
        redelivered = not stored.message_id.startswith(prefix or self.owner.id_prefix)
        return from_stored(stored, redelivered, copy=False)

    # -- for admin operations (broker/engine/admin.py) ----------------------------------------------

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """No page-in while the caller reads or removes paged messages itself."""
        self._holds += 1
        try:
            # Messages decided for memory but not put in yet stand after `after` too: let them land.
            deadline = asyncio.get_running_loop().time() + HOLD_WAIT
            while self._task is not None or (self.unrouted and asyncio.get_running_loop().time() < deadline):
                await asyncio.sleep(0.001)
            yield
        finally:
            self._holds -= 1
            self.need()

    async def read_paged(self, after: int | None, limit: int) -> tuple[list[Message], Page]:
        """Paged messages in store order after position `after` (`self.after` when the caller
        began), without paging them in; a caller that takes them out holds the cursor (`held`)."""
        store = self.owner.store
        if store is None:
            return [], Page([], after)
        page = await store.read_batch(self.queue.name, after, limit)
        return [self._message(m) for m in page.messages], page

    def is_paged(self, message_id: str) -> bool:
        """Is this stored message of the queue one that is in the store only?"""
        store = self.owner.store
        if store is None or self.paged <= 0:
            return False
        position = store.position(self.queue.name, message_id)
        return position is not None and (self.after is None or position > self.after)

    async def read_one(self, message_id: str) -> Message | None:
        store = self.owner.store
        if store is None or not self.is_paged(message_id):
            return None
        stored = await store.read(self.queue.name, message_id)
        return self._message(stored) if stored is not None else None

    def stats(self) -> dict[str, int]:
        return {"paged": max(0, self.paged), "page_reads": self.reads}
