"""A queue: messages waiting for delivery in priority order, served to consumers round-robin.

Used for `/queue/NAME` destinations, for durable topic subscriptions (named `durable:<client-id>:<name>`)
and for the private buffer of each non-durable topic subscription. One deque per JMS priority (0-9)
keeps priority ordering O(1) per message. A level's deque is made when a message of that priority
first arrives (an empty deque costs 760 bytes, ten of them most of an idle queue's memory), so a
queue that only ever sees the default priority holds one.

Dispatch runs in slices (broker/slicing.py): it delivers until its budget is spent and leaves the
rest to the broker's slicer, so draining a long backlog to a fast consumer never holds the event
loop for more than a slice. While leftovers are queued, nothing is dispatched inline: later
messages wait behind them, and per-consumer order, priorities, prefetch and flow control are
those of one uninterrupted dispatch.

With selectors, a scan passes over messages that no ready consumer matches. Its position is kept
across deliveries and slices, so that a long non-matching prefix is evaluated once per round, not
once per delivered message; anything that could make a skipped message deliverable (a message put
ahead, a consumer added or newly ready) starts the next round from the front.

Exclusive consumers and message groups (groups.py) narrow which consumer may take a message; a
queue pays for them (an `Ownership`) only once it meets an exclusive consumer or a grouped message.

A durable queue on a broker with a store owns a store cursor (cursor.py, docs/paging.md): only a
window of its persistent messages is in memory, the rest is counted in `depth` and `paged` and read
back from the store as the window drains. Priority order applies within the window.

Memory accounting counts *undelivered* bytes only (in-flight messages are bounded by prefetch), in
the queue's share of the broker's memory budget (transports/memory.py, docs/memory.md): `bytes` is
that share's count.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from broker.engine.cursor import Cursor
from broker.engine.groups import GROUP_ID, Ownership
from broker.engine.message import Message, now_ms
from broker.engine.slicing import Budget, Slicer
from broker.engine.spill import Spill
from config.model import Limits
from transports.memory import Share

if TYPE_CHECKING:
    from broker.engine.policies import Resolved
    from broker.engine.subscription import Subscription

# With selectors, messages that match no ready consumer are skipped; a round gives up after this
# many in a row (the next SEND, ACK or consumer starts another).
SCAN_LIMIT = 10_000
_FRONT = (9, 0)  # the scan position of a fresh round: the oldest message of the highest priority
# A level no message of that priority has reached yet: empty and falsy, read as a deque would be.
_NONE: Any = ()
_NOT_DEFERRED: frozenset[int] = frozenset()  # `_ready` until a first deferral (a set costs 216 bytes)


def _no_levels() -> list[deque[Message]]:
    return [_NONE] * 10  # read-only until put() makes a deque


class QueueOwner(Protocol):
    slicer: Slicer  # runs the leftovers of a dispatch that used up its budget
    limits: Limits

    def forget(self, queue: Queue, message: Message) -> None:
        """The message left the queue for good (acked, expired): drop its stored copy."""

    def policy_for(self, destination: str) -> Resolved:
        """The destination's settings (broker/engine/policies.py), shared, never copied."""

    def memory_share(self, name: str, policy: Resolved) -> Share:
        """A destination's share of the memory budget."""

    def cursor_for(self, queue: Queue) -> Cursor | None:
        """The store cursor of a durable queue (None: every message stays in memory)."""

    def spill_for(self, queue: Queue) -> Spill | None:
        """Where a queue's unstored messages go beyond its window (None: memory only)."""


class Queue:
    # Slots: a broker may hold limits.max_destinations of these (docs/fairness.md, "Many destinations").
    __slots__ = ("name", "memory", "durable", "owner", "_levels", "consumers", "_next", "_dispatching",
                 "_deferred", "_cursor", "_scanned", "_ready", "ownership", "depth", "enqueued", "dequeued",
                 "in_flight", "expired", "discarded", "cursor", "policy", "spill")

    def __init__(self, name: str, owner: QueueOwner, durable: bool, memory: Share | None = None,
                 policy: Resolved | None = None) -> None:
        self.name = name
        # A durable subscription's queue (and a topic subscriber's) passes its topic's policy.
        self.policy = policy if policy is not None else owner.policy_for(name)
        # A topic subscriber's queue passes a share under its topic's; others are destinations.
        self.memory = memory if memory is not None else owner.memory_share(name, self.policy)
        # durable: persistent messages of this queue are in the store under `name`.
        self.durable = durable
        self.owner = owner
        self._levels = _no_levels()
        self.consumers: list[Subscription] = _NONE  # a list from the first consumer on
        self._next = 0
        self._dispatching = False
        self._deferred = False  # leftovers of a dispatch wait in the owner's slicer
        self._cursor = _FRONT  # (priority, index) where the scan resumes
        self._scanned = 0  # messages passed over in this round
        self._ready: frozenset[int] | set[int] = _NOT_DEFERRED  # id() of the consumers ready when we deferred
        self.ownership: Ownership | None = None  # exclusive consumers and group owners, once needed
        self.depth = 0
        self.enqueued = 0
        self.dequeued = 0
        self.in_flight = 0
        self.expired = 0
        self.discarded = 0  # dropped for a slow subscriber (topic_pending_limit, a full budget)
        self.cursor: Cursor | None = owner.cursor_for(self) if durable else None
        # Non-persistent messages beyond the window, in the temporary store (spill.py): queues,
        # temporary queues and durable subscriptions; a non-durable topic subscriber's stay in
        # memory, where a slow one loses its oldest (topic.py).
        self.spill: Spill | None = owner.spill_for(self) if durable else None

    # -- putting messages in ------------------------------------------------------------------------

    def arrive(self, message: Message) -> None:
        """A sent message for this queue: spilled if it is one the spill takes (non-persistent, or any
        to a temporary queue) and the window is full (spill.py), else put."""
        spill = self.spill
        if spill is not None and spill.takes(message):
            spill.add(message)
        else:
            self.put(message)

    def put(self, message: Message) -> None:
        if message.priority > self._cursor[0]:
            self._cursor = _FRONT  # it lands in a part of the queue this round has scanned
        self._level(message.priority).append(message)
        self.depth += 1
        self.memory.charge(message.size)
        self.enqueued += 1

    def offer(self, message: Message) -> bool:
        """Deliver `message` at once if `put` and `dispatch` could only hand it straight to the one
        consumer: nothing waiting or being dispatched, no store cursor, no ownership, and that
        consumer ready for it. False: nothing done, put it. A topic's non-durable subscriber is
        usually so; this spares its fan-out the queue's scan per subscriber."""
        consumers = self.consumers
        if (self.depth or self._dispatching or self._deferred or len(consumers) != 1
                or self.cursor is not None or self.ownership is not None):
            return False
        consumer = consumers[0]
        if not (consumer.ready() and consumer.matches(message)) or GROUP_ID in message.headers:
            return False
        if message.expires and message.expired(now_ms()):
            return False  # put and dispatch count it as expired
        self.enqueued += 1
        self._dispatching = True  # as in _run: deliver() may call back into us
        try:
            tracked = consumer.deliver(message)
        finally:
            self._dispatching = False
        if tracked:
            self.in_flight += 1
        else:
            self.done(message)
        return True

    def _level(self, priority: int) -> deque[Message]:
        """The deque of `priority`, made on first use."""
        level = self._levels[priority]
        if level is _NONE:
            level = self._levels[priority] = deque()
        return level

    def page_in(self, messages: list[Message]) -> None:
        """Messages read back from the store (the cursor's): counted in `depth` already. An
        expired one is dropped now rather than held."""
        now = now_ms()
        for message in messages:
            if message.expires and message.expired(now):
                self._expire(message)
                continue
            if message.priority > self._cursor[0]:
                self._cursor = _FRONT
            self._level(message.priority).append(message)
            self.memory.charge(message.size)

    def busy(self) -> bool:
        """Messages of this queue on their way to or from the store (it must not be collected)."""
        cursor, spill = self.cursor, self.spill
        return (cursor is not None and cursor.busy()) or (spill is not None and spill.busy())

    @property
    def paged(self) -> int:
        """Waiting messages in the store only (part of `depth`)."""
        cursor = self.cursor
        return max(0, cursor.paged) if cursor is not None else 0

    @property
    def spilled(self) -> int:
        """Waiting messages in the temporary store only (part of `depth`): non-persistent ones, and
        a temporary queue's persistent ones."""
        return self.spill.count if self.spill is not None else 0

    def put_front(self, messages: Iterable[Message]) -> None:
        """Messages back from a consumer that left or NACKed: ahead of everything else of their priority."""
        self._cursor = _FRONT
        for message in reversed(list(messages)):
            self._level(message.priority).appendleft(message)
            self.depth += 1
            self.memory.charge(message.size)

    def withdraw(self, message: Message) -> bool:
        """Take back a waiting message as if it had never been put (the hot standby mirroring a
        store removal). Scans from the oldest, where removals usually are; False if not waiting."""
        self._cursor = _FRONT  # indexes after it shift
        level = self._levels[message.priority]
        if not level:
            return False
        if level[0] is message:
            level.popleft()
        else:
            try:
                level.remove(message)  # Message has eq=False: compared by identity
            except ValueError:
                return False
        self.depth -= 1
        self.memory.release(message.size)
        self.enqueued -= 1
        return True

    def levels(self, delivery_order: bool = False) -> list[deque[Message]]:
        """The waiting messages by priority, 0 first (9 first in delivery order); for reading only
        (broker/engine/admin.py is the one reader)."""
        return self._levels[::-1] if delivery_order else list(self._levels)
    def messages(self) -> list[Message]:
        """Snapshot in delivery order (for tests and tools)."""
        return [m for level in reversed(self._levels) for m in level]

    def drain(self) -> list[Message]:
        """Remove and return every waiting message in memory (paged ones stay counted)."""
        out = self.messages()
        self._cursor = _FRONT
        self._levels = _no_levels()
        self.depth = self.paged + self.spilled
        self.memory.set(0)
        return out

    def discard_oldest(self) -> bool:
        """Drop the oldest waiting message of the lowest priority (a slow non-durable topic
        subscriber's, as ActiveMQ's oldest-message eviction); False if nothing waits."""
        for level in self._levels:
            if level:
                message = level.popleft()
                self._cursor = _FRONT  # indexes shift
                self.depth -= 1
                self.memory.release(message.size)
                self.discarded += 1
                self.owner.forget(self, message)
                return True
        return False

    @property
    def bytes(self) -> int:
        """Undelivered bytes waiting here."""
        return self.memory.used

    # -- consumers ----------------------------------------------------------------------------------

    def add_consumer(self, consumer: Subscription) -> None:
        if self.consumers is _NONE:
            self.consumers = []
        self.consumers.append(consumer)
        self._cursor = _FRONT
        if consumer.exclusive and self.ownership is None:
            self.ownership = Ownership()

    def remove_consumer(self, consumer: Subscription) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
            self._next = 0
            self._cursor = _FRONT
            if self.ownership is not None:
                self.ownership.consumer_left(consumer)

    def dispatch(self, budget: Budget | None = None) -> None:
        """Hand waiting messages to ready consumers until one side runs out or `budget` (a fresh
        slice if None) is spent; then the owner's slicer continues on a later turn. The budget is
        looked at after a delivery, so a caller sharing it checks it first (`dispatch_within`)."""
        if self._dispatching or self._deferred or not self.depth or not self.consumers:
            return
        self._cursor, self._scanned = _FRONT, 0
        self._run(budget or self.owner.slicer.budget())

    def dispatch_within(self, budget: Budget) -> None:
        """Dispatch now if `budget`, shared with other queues, is not spent yet; else on a later turn."""
        if not budget.spent():
            self.dispatch(budget)
        elif not (self._dispatching or self._deferred or not self.depth or not self.consumers):
            self._cursor, self._scanned = _FRONT, 0
            self._defer()

    def resume(self, budget: Budget) -> bool:
        """The slicer's turn (slicing.Job): go on where the last slice stopped."""
        self._deferred = False
        if any(id(c) not in self._ready and c.ready() for c in self.consumers):
            # A consumer became ready (an ACK, a drained socket): a message this round passed over
            # may be its to take, and in order, so the round starts again from the front.
            self._cursor, self._scanned = _FRONT, 0
        if self.depth and self.consumers:
            self._run(budget)
        return False  # if more is left, _run has deferred us again

    def _run(self, budget: Budget) -> None:
        self._dispatching = True  # deliver() may call back into us (e.g. resume_writing); do not nest
        clock, deadline = time.perf_counter, budget.deadline  # locals: this runs per message
        try:
            now = now_ms()
            while self.depth and any(c.ready() for c in self.consumers):
                taken = self._take(now, budget)
                if taken is None:
                    break
                message, consumer = taken
                self.depth -= 1
                self.memory.release(message.size)
                if consumer.deliver(message):
                    self.in_flight += 1
                else:
                    self.done(message)  # auto ack: consumed the moment it is written
                if clock() >= deadline:
                    self._defer()
                    break
        finally:
            self._dispatching = False
        if self.cursor is not None:
            # Below low water the cursor reads ahead; messages in memory and none taken while
            # consumers are ready: a selector passes them all over, so read on past the window.
            stalled = not self._deferred and any(self._levels) and any(c.ready() for c in self.consumers)
            self.cursor.need(stalled)
        if self.spill is not None:
            stalled = not self._deferred and any(self._levels) and any(c.ready() for c in self.consumers)
            self.spill.need(stalled)

    def _defer(self) -> None:
        self._deferred = True
        self._ready = {id(c) for c in self.consumers if c.ready()}
        self.owner.slicer.defer(self)

    def _take(self, now: int, budget: Budget) -> tuple[Message, Subscription] | None:
        """The next message a ready consumer takes, scanning from the cursor; None when there is
        none within SCAN_LIMIT, or when the budget ran out mid-scan (then we are deferred)."""
        top, start = self._cursor
        levels = self._levels
        for priority in range(top, -1, -1):
            level = levels[priority]
            if not level:
                continue
            i = start if priority == top else 0
            while i < len(level):
                message = level[i]
                if message.expired(now):
                    del level[i]
                    self._expire(message)
                    continue
                consumer = self._pick(message)
                if consumer is not None:
                    if i == 0:
                        level.popleft()
                    else:
                        del level[i]
                    # Within a round consumers only lose readiness, so what was passed over stays so.
                    self._cursor, self._scanned = (priority, i), 0
                    return message, consumer
                i += 1
                self._scanned += 1
                if self._scanned >= SCAN_LIMIT:
                    self._cursor = (priority, i)
                    return None
                if budget.spent():  # selectors are costly to evaluate: slice the scan as well
                    self._cursor = (priority, i)
                    self._defer()
                    return None
        self._cursor = (0, len(self._levels[0]))
        return None

    def _pick(self, message: Message) -> Subscription | None:
        if self.ownership is not None or GROUP_ID in message.headers:
            return self._pick_owned(message)
        n = len(self.consumers)
        for k in range(n):
            index = (self._next + k) % n
            consumer = self.consumers[index]
            if consumer.ready() and consumer.matches(message):
                self._next = (index + 1) % n
                return consumer
        return None

    def _pick_owned(self, message: Message) -> Subscription | None:
        """_pick where an exclusive consumer or a group owner may be the only one allowed."""
        ownership = self.ownership
        if ownership is None:
            ownership = self.ownership = Ownership()
        holder = ownership.exclusive_among(self.consumers)
        if holder is not None:  # it alone takes the queue's messages
            ok = holder.ready() and holder.matches(message) and ownership.admits(holder, message)
            return holder if ok else None
        n = len(self.consumers)
        for k in range(n):
            index = (self._next + k) % n
            consumer = self.consumers[index]
            if consumer.ready() and consumer.matches(message) and ownership.admits(consumer, message):
                self._next = (index + 1) % n
                return consumer
        return None

    def _expire(self, message: Message) -> None:
        # JMS: an expired message is never delivered; it is dropped (ActiveMQ would DLQ it by policy).
        self.depth -= 1
        self.memory.release(message.size)
        self.expired += 1
        self.owner.forget(self, message)

    # -- leaving ------------------------------------------------------------------------------------

    def done(self, message: Message, stored_removal: bool = True) -> None:
        """A delivered message was consumed (acked, or auto-acked on delivery)."""
        self.dequeued += 1
        if stored_removal:
            self.owner.forget(self, message)

    def acked(self, message: Message, stored_removal: bool = True) -> None:
        self.in_flight -= 1
        self.done(message, stored_removal)

    def returned(self, messages: list[Message]) -> None:
        """Unacked messages of a consumer that left: back to the front, flagged redelivered."""
        self.in_flight -= len(messages)
        for message in messages:
            message.redelivered = True
        self.put_front(messages)

    def stats(self) -> dict[str, int]:
        return {
            "enqueued": self.enqueued,
            "dequeued": self.dequeued,
            "in_flight": self.in_flight,
            "depth": self.depth,
            "paged": self.paged,
            "spilled": self.spilled,
            "bytes": self.bytes,
            "expired": self.expired,
            "discarded": self.discarded,
            "consumers": len(self.consumers),
        }
