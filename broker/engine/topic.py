"""A topic: fan-out of each message to every subscription present when it is published.

Each subscription reads from a queue of its own: a private in-memory queue for a non-durable
subscriber (it only ever sees messages sent while it is subscribed), or the durable subscription's
queue (`durable:<client-id>:<name>`, kept while the subscriber is away and persisted in the store).
Selectors of subscriptions are applied when publishing, so a queue only holds messages it will deliver.

A slow non-durable subscriber may set ActiveMQ's `activemq.maximumPendingMessageLimit`: the number of
messages its queue keeps waiting beyond what it has been sent (its prefetch). Past it, the oldest
waiting ones are discarded as new ones arrive (ActiveMQ's default oldest-message eviction), so a
subscriber that cannot keep up costs bounded memory and still sees the latest messages. 0 keeps
nothing waiting; -1 (or no header) leaves the topic's own limit, `limits.topic_pending_limit` (below),
in force. Durable subscriptions never discard, as in ActiveMQ.

Fan-out runs in slices (broker/slicing.py): one message to a thousand subscribers is a thousand
selector evaluations, copies and deliveries, so a publish that spends its budget leaves the rest
of its subscribers, and every later message of the topic, to the broker's slicer. `publish` then
returns a future that is done once the message has reached every subscriber; the SEND's RECEIPT
waits for it, which also holds back a producer that publishes faster than the fan-out runs
(its session has a bounded number of frames in flight). The copies of a message share one
encoding of its MESSAGE frame (broker/engine/sharedframe.py), so a delivery costs the few headers
that are the subscriber's own, not the whole frame.

Slow subscribers (docs/memory.md): the copies waiting for non-durable subscribers count in the topic's
share of the memory budget. A subscriber with `limits.topic_pending_limit` messages waiting, or whose
next copy would not fit in the topic's share or the budget, loses its oldest waiting message first,
as ActiveMQ's pending-message limit does for slow topic consumers; so a subscriber that does not read
never holds the producer back, nor the budget full. Durable subscriptions keep every message: their
queues are destinations with shares of their own, and a full one holds the producer back instead,
unless it pages (persistent messages, cursor.py) or spills (non-persistent ones with
`limits.non_persistent = "spill"`, spill.py) what its window has no room for.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.engine.message import Message
from broker.engine.queue import Queue
from broker.engine.sharedframe import SharedFrame
from broker.engine.slicing import Budget, Slicer
from transports.memory import Share

if TYPE_CHECKING:
    from broker.engine.policies import Resolved


# A topic's stats: its subscriptions' counters, summed.
_SUMMED = ("dequeued", "in_flight", "depth", "paged", "spilled", "bytes", "consumers", "discarded")


@dataclass(slots=True)
class TopicQueue:
    queue: Queue
    selector: Callable[[Message], bool | None] | None
    durable: bool
    pending_limit: int = -1  # activemq.maximumPendingMessageLimit; -1: the topic's limit

    def wants(self, message: Message) -> bool:
        return self.selector is None or self.selector(message) is True

    def trim(self) -> None:
        """Keep at most pending_limit messages waiting: the oldest beyond it are discarded."""
        queue = self.queue
        while queue.depth > self.pending_limit and queue.discard_oldest():
            pass


@dataclass(slots=True, eq=False)
class FanOut:
    """One published message on its way to the subscribers present when it was published."""

    message: Message
    chosen: frozenset[str]  # the durable queues that got a stored copy at SEND time
    paged: frozenset[str]  # those of them that keep it in the store only (cursor.py)
    targets: list[TopicQueue]
    next: int = 0
    done: asyncio.Future[None] | None = None  # made only when the fan-out does not finish inline


class Topic:
    def __init__(self, name: str, slicer: Slicer, memory: Share, policy: Resolved,
                 pending_limit: int = 1000) -> None:
        self.name = name
        self.slicer = slicer
        self.memory = memory  # holds every non-durable subscriber's share
        self.policy = policy  # what its share and its durable subscriptions were given (admin shows it)
        self.pending_limit = pending_limit
        self.queues: dict[str, TopicQueue] = {}  # keyed by queue name
        self.published = 0
        self._backlog: deque[FanOut] = deque()  # fan-outs not finished, in publishing order

    def attach(self, queue: Queue, selector: Callable[[Message], bool | None] | None, durable: bool,
               pending_limit: int = -1) -> None:
        self.queues[queue.name] = TopicQueue(queue, selector, durable, -1 if durable else pending_limit)

    def detach(self, queue: Queue) -> None:
        self.queues.pop(queue.name, None)

    def durable_targets(self, message: Message) -> list[TopicQueue]:
        """The durable subscriptions whose selector takes the message (they get a stored copy)."""
        return [t for t in self.queues.values() if t.durable and t.wants(message)]

    def publish(
        self, message: Message, durable: list[Queue], budget: Budget | None = None,
        paged: frozenset[str] = frozenset(),
    ) -> asyncio.Future[None] | None:
        """Deliver to the durable queues chosen (and persisted to) at SEND time, but those in
        `paged`, and to every non-durable subscriber present now. None if that is done already,
        else a future for it."""
        self.published += 1
        targets = list(self.queues.values())
        if len(targets) > 1:  # its copies' MESSAGE frames are encoded once, not once each
            message.shared = SharedFrame(message)
        job = FanOut(message, frozenset(q.name for q in durable), paged, targets)
        if not self._backlog and self._fan_out(job, budget or self.slicer.budget()):
            return None
        job.done = asyncio.get_running_loop().create_future()
        self._backlog.append(job)
        self.slicer.defer(self)
        return job.done

    def resume(self, budget: Budget) -> bool:
        """The slicer's turn (slicing.Job): continue the oldest fan-outs."""
        while self._backlog:
            job = self._backlog[0]
            if not self._fan_out(job, budget):
                return True
            self._backlog.popleft()
            if job.done is not None and not job.done.done():
                job.done.set_result(None)
            if budget.spent():
                return bool(self._backlog)
        return False

    def _fan_out(self, job: FanOut, budget: Budget) -> bool:
        """Deliver to the job's next targets until done (True) or the budget is spent (False)."""
        message, targets, queues = job.message, job.targets, self.queues
        resumed = job.done is not None  # subscribers may have left since the message was published
        clock, deadline = time.perf_counter, budget.deadline  # locals: this runs per subscriber
        index, count = job.next, len(targets)
        while index < count:
            target = targets[index]
            index += 1
            if resumed and queues.get(target.queue.name) is not target:
                continue
            if target.durable:
                if target.queue.name not in job.chosen or target.queue.name in job.paged:
                    continue
            elif not target.wants(message):
                continue
            copy = message.copy()
            copy.stored = message.stored and target.durable
            if target.durable or not target.queue.offer(copy):  # offer: delivered already
                if not target.durable:
                    self._make_room(target, copy.size)
                target.queue.arrive(copy)  # a durable subscription's may spill it (spill.py)
                if copy.stored and target.queue.cursor is not None:
                    target.queue.cursor.routed(copy)
                target.queue.dispatch(budget)
                if target.pending_limit >= 0:
                    target.trim()
            if index < count and clock() >= deadline:
                job.next = index
                return False
        job.next = index
        return True

    def _make_room(self, target: TopicQueue, size: int) -> None:
        """A slow non-durable subscriber loses its oldest waiting messages, never the producer its
        turn: past the topic's pending limit (unless its own activemq.maximumPendingMessageLimit
        replaces it, applied by `trim` after dispatch), or while the topic's share or the budget has
        no room."""
        queue = target.queue
        limit = self.pending_limit if target.pending_limit < 0 else None
        while queue.depth and ((limit is not None and queue.depth >= limit)
                               or queue.memory.blocked(size) is not None):
            queue.discard_oldest()

    def stats(self) -> dict[str, int]:
        totals = {"enqueued": self.published, "dequeued": 0, "in_flight": 0, "depth": 0, "paged": 0,
                  "spilled": 0, "bytes": 0, "consumers": 0, "discarded": 0, "subscriptions": len(self.queues)}
        for target in self.queues.values():
            s = target.queue.stats()
            for key in _SUMMED:
                totals[key] += s[key]
        return totals
