"""Stored state into a broker's destinations: one path for cold recovery and the hot standby.

`Replay.load(recovered)` builds durable subscriptions and queued messages from what a store
recovered (every message `redelivered`: possibly delivered before the crash). A hot standby then
keeps the same broker current with `Replay.apply(op)` for each change the followed store
reports, so that at takeover the new master adopts exactly what cold recovery would build.

`apply` needs to find each stored message again, so a replay made with `track=True` keeps a
message-id index per key; cold recovery does not pay for one. Anything `apply` cannot mirror
faithfully raises `ReplayMismatch`: the standby then gives up and the master recovers cold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.engine.message import Message, from_stored
from broker.engine.queue import Queue
from stores.base import AddMessage, DropSubscription, Op, PutSubscription, Recovered, RemoveMessage

if TYPE_CHECKING:
    from broker.engine.core import Broker

log = logging.getLogger(__name__)

CHECK_EVERY = 10_000  # messages between calls of `on_progress` while loading


class ReplayMismatch(ValueError):
    """A stored change that this broker's state cannot mirror exactly."""


class Replay:
    def __init__(self, broker: Broker, track: bool = False,
                 on_progress: Callable[[], None] | None = None) -> None:
        self.broker = broker
        self.track = track
        self.on_progress = on_progress  # may raise to abandon a long load (the standby's interrupt)
        self.messages: dict[str, dict[str, Message]] = {}  # key -> message id -> waiting message

    def load(self, recovered: Recovered, strict: bool = False) -> None:
        """Build from a store's recovered state; `strict`: a key nobody serves is a mismatch."""
        for sub in recovered.subscriptions:
            self.broker.recover_subscription(sub)
        loaded = 0
        for key, stored in recovered.queues.items():
            queue = self.broker.recovered_queue(key)
            if queue is None:
                if strict:
                    raise ReplayMismatch(f"messages under {key!r}, which nobody serves")
                log.warning("recovered %d messages under unknown key %r: not served", len(stored), key)
                continue
            entries = self.messages.setdefault(key, {}) if self.track else None
            for item in stored:
                message = from_stored(item)
                queue.put(message)
                if entries is not None:
                    entries[item.message_id] = message
                loaded += 1
                if self.on_progress is not None and loaded % CHECK_EVERY == 0:
                    self.on_progress()

    def apply(self, op: Op) -> None:
        """Mirror one stored change (needs `track=True`)."""
        if isinstance(op, AddMessage):
            self._add(op)
        elif isinstance(op, RemoveMessage):
            self._remove(op)
        elif isinstance(op, PutSubscription):
            self._put_subscription(op)
        elif isinstance(op, DropSubscription):
            self._drop_subscription(op)

    def count(self) -> int:
        return sum(len(entries) for entries in self.messages.values())

    def _add(self, op: AddMessage) -> None:
        entries = self.messages.setdefault(op.queue, {})
        queue = self.broker.recovered_queue(op.queue)
        if op.message.message_id in entries or queue is None:
            raise ReplayMismatch(f"message {op.message.message_id!r} of {op.queue!r} cannot be mirrored")
        message = from_stored(op.message)
        queue.put(message)
        entries[op.message.message_id] = message

    def _remove(self, op: RemoveMessage) -> None:
        destinations = self.broker.destinations
        entries = self.messages[op.queue]
        message = entries.pop(op.message_id)
        if not self._queue(op.queue).withdraw(message):
            raise ReplayMismatch(f"message {op.message_id!r} was not waiting in {op.queue!r}")
        if not entries:
            del self.messages[op.queue]
            if op.queue in destinations.queues:  # cold recovery has no empty /queue/
                del destinations.queues[op.queue]

    def _put_subscription(self, op: PutSubscription) -> None:
        sub, durable = op.subscription, self.broker.destinations.durables.get(op.subscription.key)
        if durable is None and sub.key not in self.messages:
            self.broker.recover_subscription(sub)
            return
        same = durable is not None and (durable.client_id, durable.name, durable.topic,
                                        durable.selector_text) == (sub.client_id, sub.name,
                                                                   sub.destination, sub.selector)
        if not same:
            raise ReplayMismatch(f"subscription {sub.key!r} changed in place")
        assert durable is not None
        durable.owner = sub.owner  # put again when its first user claims it (engine/guard.py)

    def _drop_subscription(self, op: DropSubscription) -> None:
        destinations = self.broker.destinations
        self.messages.pop(op.key, None)
        durable = destinations.remove_durable(op.key)
        if durable is not None:
            durable.queue.drain()
            topic = destinations.topics.get(durable.topic)
            if topic is not None and not topic.queues:  # cold recovery makes topics only for subs
                del destinations.topics[durable.topic]

    def _queue(self, key: str) -> Queue:
        destinations = self.broker.destinations
        durable = destinations.durables.get(key)
        return durable.queue if durable is not None else destinations.queues[key]
