"""Destination names (ActiveMQ conventions) and the registry of queues, topics and durable subscriptions.

`/queue/NAME` is point-to-point, `/topic/NAME` is publish-subscribe; anything else is refused. The
dead-letter queue is `/queue/ActiveMQ.DLQ`, as in ActiveMQ. The number of destinations is bounded so
that a client cannot exhaust memory by inventing names.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.engine.errors import ClientError
from broker.engine.queue import Queue, QueueOwner
from broker.engine.topic import Topic

QUEUE_PREFIX = "/queue/"
TOPIC_PREFIX = "/topic/"
DLQ = "/queue/ActiveMQ.DLQ"
MAX_DESTINATIONS = 10_000
MAX_NAME_LENGTH = 1024


def check_destination(name: str | None) -> str:
    if not name:
        raise ClientError("missing destination", "this frame requires a destination header")
    if len(name) > MAX_NAME_LENGTH:
        raise ClientError("invalid destination", f"destination longer than {MAX_NAME_LENGTH} characters")
    for prefix in (QUEUE_PREFIX, TOPIC_PREFIX):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name
    raise ClientError("invalid destination", f"{name[:200]!r}: expected /queue/NAME or /topic/NAME")


def is_topic(name: str) -> bool:
    return name.startswith(TOPIC_PREFIX)


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
    def __init__(self, owner: QueueOwner) -> None:
        self.owner = owner
        self.queues: dict[str, Queue] = {}  # /queue/... only
        self.topics: dict[str, Topic] = {}
        self.durables: dict[str, Durable] = {}
        self._by_client: dict[str, set[str]] = {}  # client-id -> keys of its durable subscriptions

    def _check_room(self) -> None:
        if len(self.queues) + len(self.topics) + len(self.durables) >= MAX_DESTINATIONS:
            raise ClientError("too many destinations", f"the broker holds at most {MAX_DESTINATIONS}")

    def queue(self, name: str) -> Queue:
        queue = self.queues.get(name)
        if queue is None:
            self._check_room()
            queue = self.queues[name] = Queue(name, self.owner, durable=True)
        return queue

    def topic(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            self._check_room()
            topic = self.topics[name] = Topic(name)
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
        return durable

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
