"""Destination names (ActiveMQ conventions) and the registry of queues, topics and durable subscriptions.

`/queue/NAME` is point-to-point, `/topic/NAME` is publish-subscribe; anything else is refused. The
dead-letter queue is `/queue/ActiveMQ.DLQ`, as in ActiveMQ. The number of destinations is bounded so
that a client cannot exhaust memory by inventing names.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.errors import ClientError
from broker.queue import Queue, QueueOwner
from broker.topic import Topic

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


class Destinations:
    def __init__(self, owner: QueueOwner) -> None:
        self.owner = owner
        self.queues: dict[str, Queue] = {}  # /queue/... only
        self.topics: dict[str, Topic] = {}
        self.durables: dict[str, Durable] = {}

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
            topic = self.topics[name] = Topic(name, self.owner.slicer)
        return topic

    def add_durable(self, durable: Durable, selector) -> None:  # type: ignore[no-untyped-def]
        self._check_room()
        self.durables[durable.key] = durable
        self.topic(durable.topic).attach(durable.queue, selector, durable=True)

    def remove_durable(self, key: str) -> Durable | None:
        durable = self.durables.pop(key, None)
        if durable is not None and durable.topic in self.topics:
            self.topics[durable.topic].detach(durable.queue)
        return durable

    def stats(self) -> dict[str, dict[str, int]]:
        out = {name: q.stats() for name, q in self.queues.items()}
        out.update({name: t.stats() for name, t in self.topics.items()})
        out.update({key: d.queue.stats() for key, d in self.durables.items()})
        return out
