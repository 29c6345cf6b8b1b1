"""A queue: messages waiting for delivery in priority order, served to consumers round-robin.

Used for `/queue/NAME` destinations, for durable topic subscriptions (named `durable:<client-id>:<name>`)
and for the private buffer of each non-durable topic subscription. Ten deques, one per JMS priority
(0-9), keep priority ordering O(1) per message.

Memory accounting counts *undelivered* bytes only: in-flight messages are bounded by prefetch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from broker.engine.message import Message, now_ms

if TYPE_CHECKING:
    from broker.engine.subscription import Subscription

# With selectors, messages that match no ready consumer are skipped; bound the scan per dispatch round.
SCAN_LIMIT = 10_000


class QueueOwner(Protocol):
    def forget(self, queue: Queue, message: Message) -> None:
        """The message left the queue for good (acked, expired): drop its stored copy."""


class Queue:
    def __init__(self, name: str, owner: QueueOwner, durable: bool) -> None:
        self.name = name
        # durable: persistent messages of this queue are in the store under `name`.
        self.durable = durable
        self.owner = owner
        self._levels: list[deque[Message]] = [deque() for _ in range(10)]
        self.consumers: list[Subscription] = []
        self._next = 0
        self._dispatching = False
        self.depth = 0
        self.bytes = 0
        self.enqueued = 0
        self.dequeued = 0
        self.in_flight = 0
        self.expired = 0

    # -- putting messages in ------------------------------------------------------------------------

    def put(self, message: Message) -> None:
        self._levels[message.priority].append(message)
        self.depth += 1
        self.bytes += message.size
        self.enqueued += 1

    def put_front(self, messages: Iterable[Message]) -> None:
        """Messages back from a consumer that left or NACKed: ahead of everything else of their priority."""
        for message in reversed(list(messages)):
            self._levels[message.priority].appendleft(message)
            self.depth += 1
            self.bytes += message.size

    def withdraw(self, message: Message) -> bool:
        """Take back a waiting message as if it had never been put (the hot standby mirroring a
        store removal). Scans from the oldest, where removals usually are; False if not waiting."""
        level = self._levels[message.priority]
        if level and level[0] is message:
            level.popleft()
        else:
            try:
                level.remove(message)  # Message has eq=False: compared by identity
            except ValueError:
                return False
        self.depth -= 1
        self.bytes -= message.size
        self.enqueued -= 1
        return True

    def messages(self) -> list[Message]:
        """Snapshot in delivery order (for tests and tools)."""
        return [m for level in reversed(self._levels) for m in level]

    def drain(self) -> list[Message]:
        """Remove and return every waiting message."""
        out = self.messages()
        for level in self._levels:
            level.clear()
        self.depth = self.bytes = 0
        return out

    # -- consumers ----------------------------------------------------------------------------------

    def add_consumer(self, consumer: Subscription) -> None:
        self.consumers.append(consumer)

    def remove_consumer(self, consumer: Subscription) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
            self._next = 0

    def dispatch(self) -> None:
        """Hand waiting messages to ready consumers until one side runs out."""
        if self._dispatching or not self.depth or not self.consumers:
            return
        self._dispatching = True  # deliver() may call back into us (e.g. resume_writing); do not nest
        try:
            now = now_ms()
            while self.depth and any(c.ready() for c in self.consumers):
                taken = self._take(now)
                if taken is None:
                    break
                message, consumer = taken
                self.depth -= 1
                self.bytes -= message.size
                if consumer.deliver(message):
                    self.in_flight += 1
                else:
                    self.done(message)  # auto ack: consumed the moment it is written
        finally:
            self._dispatching = False

    def _take(self, now: int) -> tuple[Message, Subscription] | None:
        scanned = 0
        for level in reversed(self._levels):
            i = 0
            while i < len(level) and scanned < SCAN_LIMIT:
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
                    return message, consumer
                i += 1
                scanned += 1
        return None

    def _pick(self, message: Message) -> Subscription | None:
        n = len(self.consumers)
        for k in range(n):
            index = (self._next + k) % n
            consumer = self.consumers[index]
            if consumer.ready() and consumer.matches(message):
                self._next = (index + 1) % n
                return consumer
        return None

    def _expire(self, message: Message) -> None:
        # JMS: an expired message is never delivered; it is dropped (ActiveMQ would DLQ it by policy).
        self.depth -= 1
        self.bytes -= message.size
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
            "bytes": self.bytes,
            "expired": self.expired,
            "consumers": len(self.consumers),
        }
