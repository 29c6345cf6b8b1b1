"""Destination names (ActiveMQ conventions) and the registry of queues, topics and durable subscriptions.

`/queue/NAME` is point-to-point, `/topic/NAME` is publish-subscribe, and a name with neither prefix
is the queue of that name, as ActiveMQ's STOMP converter makes it (`orders` is `/queue/orders`:
the same queue, the same metrics and the same authorization entry; MESSAGE frames from it say
`destination:/queue/orders`, as ActiveMQ's do). The dead-letter queue is `/queue/ActiveMQ.DLQ`, as
in ActiveMQ. The number of destinations (queues,
topics and durable subscriptions together) is bounded by `limits.max_destinations` so that a client
cannot exhaust memory by inventing names.

Garbage collection (ActiveMQ's gcInactiveDestinations) keeps that bound from becoming a lockout: a
queue holding no message (waiting or in flight) and with no consumer, or a topic with no subscriber
(durable subscriptions attach to their topic, so theirs is kept), is removed once a sweep has seen it
idle, its counters unchanged, for `destination_gc_idle` seconds. A queue's messages, persistent ones
included, are counted in its depth while they wait, so a destination holding messages is never
collected. Durable subscriptions are never collected: only UNSUBSCRIBE ends them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from broker.engine.errors import ClientError
from broker.engine.queue import Queue, QueueOwner
from broker.engine.topic import Topic

log = logging.getLogger(__name__)

QUEUE_PREFIX = "/queue/"
TOPIC_PREFIX = "/topic/"
# Temporary destinations (tempdest.py): a connection's own names, and the broker-wide ones.
TEMP_QUEUE = "/temp-queue/"
TEMP_TOPIC = "/temp-topic/"
LOCAL_TEMP_PREFIXES = (TEMP_QUEUE, TEMP_TOPIC)
REMOTE_TEMP_QUEUE = "/remote-temp-queue/"
REMOTE_TEMP_TOPIC = "/remote-temp-topic/"
REMOTE_TEMP_PREFIXES = (REMOTE_TEMP_QUEUE, REMOTE_TEMP_TOPIC)
_TOPIC_PREFIXES = (TOPIC_PREFIX, REMOTE_TEMP_TOPIC)
DLQ = "/queue/ActiveMQ.DLQ"
MAX_NAME_LENGTH = 1024
GC_SLICE = 1000  # destinations looked at per loop turn by a GC sweep

Activity = tuple[int, int]  # counters that move whenever a destination is used


def check_destination(name: str | None) -> str:
    """The destination a client names, as the broker names it: `/queue/...` or `/topic/...`."""
    if not name:
        raise ClientError("missing destination", "this frame requires a destination header")
    if len(name) > MAX_NAME_LENGTH:
        raise ClientError("invalid destination", f"destination longer than {MAX_NAME_LENGTH} characters")
    for prefix in (QUEUE_PREFIX, TOPIC_PREFIX, *REMOTE_TEMP_PREFIXES):
        if name.startswith(prefix):
            if len(name) == len(prefix):
                raise ClientError("invalid destination", f"the name after {prefix} is empty")
            return name
    if name.startswith(LOCAL_TEMP_PREFIXES):  # the session resolves these before (tempdest.py)
        raise ClientError("invalid destination", f"{name[:200]!r}: a temporary destination here")
    return QUEUE_PREFIX + name  # ActiveMQ's fallback for a name without a prefix: that queue


def is_topic(name: str) -> bool:
    return name.startswith(_TOPIC_PREFIXES)


def is_temp(name: str) -> bool:
    """A broker-wide temporary destination's name (tempdest.py)."""
    return name.startswith(REMOTE_TEMP_PREFIXES)


def durable_key(client_id: str, name: str) -> str:
    return f"durable:{client_id}:{name}"


@dataclass(slots=True)
class Durable:
    """A durable topic subscription: its queue lives while the subscriber is away."""

    key: str
    client_id: str
    name: str
    topic: str
    selector_text: str | None
    queue: Queue
    attached: bool = False
    owner: str | None = None  # the user who created it (broker/engine/guard.py); None: nobody


class Destinations:
    def __init__(self, owner: QueueOwner, max_destinations: int = 20_000) -> None:
        self.owner = owner
        self.max_destinations = max_destinations
        self.queues: dict[str, Queue] = {}  # /queue/... and temporary ones (/remote-temp-queue/...)
        self.topics: dict[str, Topic] = {}
        self.durables: dict[str, Durable] = {}
        self._idle: dict[str, tuple[float, Activity]] = {}  # name -> (seen idle since, its counters then)
        self.collected = 0  # destinations removed by GC
        self._by_client: dict[str, set[str]] = {}  # client-id -> keys of its durable subscriptions

    def _check_room(self) -> None:
        if len(self.queues) + len(self.topics) + len(self.durables) >= self.max_destinations:
            raise ClientError("too many destinations", f"the broker holds at most {self.max_destinations} "
                              "queues, topics and durable subscriptions (limits.max_destinations)")

    def queue(self, name: str, limited: bool = True) -> Queue:
        """The queue `name`, created if need be; `limited=False` for one whose message was already
        admitted (its queue was collected while the store write ran): that must not fail now."""
        queue = self.queues.get(name)
        if queue is None:
            if limited:
                self._check_room()
            queue = self.queues[name] = Queue(name, self.owner, durable=True)
        return queue

    def topic(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            self._check_room()
            policy = self.owner.policy_for(name)
            memory = self.owner.memory_share(name, policy)
            topic = self.topics[name] = Topic(name, self.owner.slicer, memory, policy,
                                              self.owner.limits.topic_pending_limit)
        return topic

    def add_durable(self, durable: Durable, selector) -> None:  # type: ignore[no-untyped-def]
        self._check_room()
        self.durables[durable.key] = durable
        self._by_client.setdefault(durable.client_id, set()).add(durable.key)
        self.topic(durable.topic).attach(durable.queue, selector, durable=True)

    def remove_durable(self, key: str) -> Durable | None:
        durable = self.durables.pop(key, None)
        if durable is None:
            return None
        keys = self._by_client.get(durable.client_id, set())
        keys.discard(key)
        if not keys:
            self._by_client.pop(durable.client_id, None)
        if durable.topic in self.topics:
            self.topics[durable.topic].detach(durable.queue)
        durable.queue.memory.close()  # its messages are dropped with it (drop_durable drains them)
        return durable

    # -- garbage collection -------------------------------------------------------------------------

    async def collect_forever(self, interval: float, idle_for: float) -> None:
        """Sweep every `interval` seconds until cancelled (the broker's stop)."""
        clock = asyncio.get_running_loop().time
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await self.collect(idle_for, clock)
            except Exception:  # a failed sweep must not end collection for good
                log.exception("destination GC sweep failed")
                continue
            if removed:
                log.info("removed %d destinations idle for %gs", removed, idle_for)

    async def collect(self, idle_for: float, clock: Callable[[], float]) -> int:
        """One GC sweep: remove destinations idle for `idle_for` seconds; return how many.

        Looks at GC_SLICE destinations per loop turn, so a full table never holds the loop for long.
        Only destinations idle now are remembered, so the idle table never outgrows this one.
        """
        names = [*self.queues, *self.topics]
        seen, self._idle = self._idle, {}
        removed = 0
        for start in range(0, len(names), GC_SLICE):
            if start:
                await asyncio.sleep(0)
            now = clock()
            for name in names[start:start + GC_SLICE]:
                removed += self._collect(name, seen.get(name), now, idle_for)
        self.collected += removed
        return removed

    def _collect(self, name: str, seen: tuple[float, Activity] | None, now: float, idle_for: float) -> bool:
        activity = self._activity(name)
        if activity is None:
            return False  # in use (or gone already)
        if seen is None or seen[1] != activity:
            self._idle[name] = (now, activity)  # idle from now on: used since the last sweep
            return False
        if now - seen[0] < idle_for:
            self._idle[name] = seen
            return False
        if is_topic(name):
            self.topics.pop(name).memory.close()
        else:
            self.queues.pop(name).memory.close()
        return True

    def _activity(self, name: str) -> Activity | None:
        """The destination's usage counters if it is collectable now (empty, unused), else None.
        Temporary destinations are not collected: they end with their connection."""
        if is_temp(name):
            return None
        if is_topic(name):
            topic = self.topics.get(name)
            return None if topic is None or topic.queues else (topic.published, 0)
        queue = self.queues.get(name)
        if queue is None or queue.depth or queue.in_flight or queue.consumers or queue.busy():
            return None
        return (queue.enqueued, queue.dequeued)
    def owners_of(self, client_id: str) -> set[str]:
        """The users owning durable subscriptions under `client_id` (unowned ones not counted)."""
        keys = self._by_client.get(client_id, ())
        return {owner for key in keys if (owner := self.durables[key].owner) is not None}

    def exists(self, destination: str) -> bool:
        """Does the broker hold this queue or topic already? (Creating one takes the admin right.)"""
        return destination in (self.topics if is_topic(destination) else self.queues)

    def stats(self) -> dict[str, dict[str, int]]:
        out = {name: q.stats() for name, q in self.queues.items()}
        out.update({name: t.stats() for name, t in self.topics.items()})
        out.update({key: d.queue.stats() for key, d in self.durables.items()})
        return out
