"""Stored state into a broker's destinations: one path for cold recovery and the hot standby.

`Replay.load(recovered)` builds durable subscriptions and queued messages from what a store
recovered (every message `redelivered`: possibly delivered before the crash). A hot standby then
keeps the same broker current with `Replay.apply(op)` for each change the followed store
reports, so that at takeover the new master adopts exactly what cold recovery would build.

`apply` needs to find each stored message again, so a replay made with `track=True` keeps a
message-id index per key of the messages in memory; cold recovery does not pay for one.

Paging (broker/engine/cursor.py): a store recovers only a head of each queue (`Recovered.queues`)
and its total (`Recovered.depth`); the rest is counted as paged and read back by the queue's
cursor. The hot standby pages the same way without reading: an add to a queue whose window is full
(or that pages already) is only counted, and a removal of a message it does not hold in memory
uncounts one. So a slave's memory does not track the master's backlog. Anything `apply` cannot mirror
faithfully raises `ReplayMismatch`: the standby then gives up and the master recovers cold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.engine.message import OVERHEAD, Message, from_stored
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
            if entries is not None and not entries:
                del self.messages[key]
            self._count_rest(queue, recovered.depth(key) - len(stored))

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

    @staticmethod
    def _count_rest(queue: Queue, rest: int) -> None:
        """The stored messages of `queue` beyond the recovered head: paged, read back later."""
        if rest <= 0:
            return
        if queue.cursor is None:
            raise ReplayMismatch(f"{rest} messages of {queue.name!r} beyond the head, and no cursor")
        queue.cursor.counted(rest)

    def depths(self) -> dict[str, int]:
        """Waiting messages per key (in memory and paged), for keys that hold any."""
        destinations = self.broker.destinations
        # Copies first: the standby's log line reads this while its worker thread replays.
        durables = list(destinations.durables.values())
        queues = [*list(destinations.queues.values()), *(d.queue for d in durables)]
        return {q.name: q.depth for q in queues if q.depth}

    def count(self) -> int:
        return sum(self.depths().values())

    def _add(self, op: AddMessage) -> None:
        entries = self.messages.setdefault(op.queue, {})
        queue = self.broker.recovered_queue(op.queue)
        if op.message.message_id in entries or queue is None:
            raise ReplayMismatch(f"message {op.message.message_id!r} of {op.queue!r} cannot be mirrored")
        cursor = queue.cursor
        if cursor is not None and cursor.page_next(len(op.message.body) + OVERHEAD):
            cursor.counted()  # the body is dropped: the new master reads it back when it needs it
            if not entries:
                del self.messages[op.queue]
            return
        message = from_stored(op.message)
        queue.put(message)
        entries[op.message.message_id] = message

    def _remove(self, op: RemoveMessage) -> None:
        destinations = self.broker.destinations
        queue = self._queue(op.queue)
        entries = self.messages.get(op.queue, {})
        message = entries.pop(op.message_id, None)
        if message is None:  # not in memory: one of the paged ones
            if queue.cursor is None or queue.cursor.paged <= 0:
                raise ReplayMismatch(f"message {op.message_id!r} was not waiting in {op.queue!r}")
            queue.cursor.uncount()
        elif not queue.withdraw(message):
            raise ReplayMismatch(f"message {op.message_id!r} was not waiting in {op.queue!r}")
        if not entries:
            self.messages.pop(op.queue, None)
            if op.queue in destinations.queues and not queue.depth:  # cold recovery has no empty /queue/
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
            if durable.queue.cursor is not None:
                durable.queue.cursor.clear()
            topic = destinations.topics.get(durable.topic)
            if topic is not None and not topic.queues:  # cold recovery makes topics only for subs
                del destinations.topics[durable.topic]

    def _queue(self, key: str) -> Queue:
        destinations = self.broker.destinations
        durable = destinations.durables.get(key)
        return durable.queue if durable is not None else destinations.queues[key]
