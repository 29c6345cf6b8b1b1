"""A topic: fan-out of each message to every subscription present when it is published.

Each subscription reads from a queue of its own: a private in-memory queue for a non-durable
subscriber (it only ever sees messages sent while it is subscribed), or the durable subscription's
queue (`durable:<client-id>:<name>`, kept while the subscriber is away and persisted in the store).
Selectors of subscriptions are applied when publishing, so a queue only holds messages it will deliver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from broker.engine.message import Message
from broker.engine.queue import Queue


@dataclass(slots=True)
class TopicQueue:
    queue: Queue
    selector: Callable[[Message], bool | None] | None
    durable: bool

    def wants(self, message: Message) -> bool:
        return self.selector is None or self.selector(message) is True


class Topic:
    def __init__(self, name: str) -> None:
        self.name = name
        self.queues: dict[str, TopicQueue] = {}  # keyed by queue name
        self.published = 0

    def attach(self, queue: Queue, selector: Callable[[Message], bool | None] | None, durable: bool) -> None:
        self.queues[queue.name] = TopicQueue(queue, selector, durable)

    def detach(self, queue: Queue) -> None:
        self.queues.pop(queue.name, None)

    def targets(self, message: Message) -> list[TopicQueue]:
        return [t for t in self.queues.values() if t.wants(message)]

    def publish(self, message: Message, durable: list[Queue]) -> None:
        """Deliver to the durable queues chosen (and persisted to) at SEND time and to every
        non-durable subscriber present now."""
        self.published += 1
        chosen = {q.name for q in durable}
        for target in list(self.queues.values()):
            if target.durable and target.queue.name not in chosen:
                continue
            if not target.durable and not target.wants(message):
                continue
            copy = message.copy()
            copy.stored = message.stored and target.durable
            target.queue.put(copy)
            target.queue.dispatch()

    def stats(self) -> dict[str, int]:
        totals = {"enqueued": self.published, "dequeued": 0, "in_flight": 0, "depth": 0, "bytes": 0,
                  "consumers": 0, "subscriptions": len(self.queues)}
        for target in self.queues.values():
            s = target.queue.stats()
            for key in ("dequeued", "in_flight", "depth", "bytes", "consumers"):
                totals[key] += s[key]
        return totals
