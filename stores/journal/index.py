"""The in-memory index: live messages by queue (in order) → the record that holds each one.

Bodies are not kept here: they stay in the data files and are read back on demand (the heads
that open hands over, compaction, Store.read). Only the writer thread mutates an Index; readers
in other threads use only `find` and `orders`, single dict lookups that need no lock (see
stores/order.py).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from operator import attrgetter

from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    PutSubscription,
    RemoveMessage,
)
from stores.journal.records import JournalOp, Move
from stores.order import QueueOrder
from stores.reads import Key as Key  # re-exported: the journal's modules name them from here
from stores.reads import Location as Location
from stores.reads import locate_in

_FILE = attrgetter("file")


class Index:
    def __init__(self, duplicate_window: int) -> None:
        self.queues: dict[str, dict[str, Location]] = {}  # dicts keep insertion (queue) order
        self.orders: dict[str, QueueOrder] = {}  # the same order, with positions for read_batch
        self._next_position = 1
        self.subscriptions: dict[str, DurableSubscription] = {}
        self.producers: deque[str] = deque(maxlen=duplicate_window)
        self.live: Counter[int] = Counter()  # data file → live messages located in it
        self.messages = 0

    def apply(self, ops: Sequence[JournalOp], loc: Location) -> None:
        """Apply one BATCH record's ops, all of them found in the record at `loc`."""
        for op in ops:
            if isinstance(op, AddMessage):
                self._put(op.queue, op.message.message_id, loc)
                if op.message.producer_id is not None and self.producers.maxlen:
                    self.producers.append(op.message.producer_id)
            elif isinstance(op, RemoveMessage):
                self._drop(op.queue, op.message_id)
            elif isinstance(op, PutSubscription):
                self.subscriptions[op.subscription.key] = op.subscription
            elif isinstance(op, DropSubscription):
                self.subscriptions.pop(op.key, None)
                for message_id in list(self.queues.get(op.key, ())):
                    self._drop(op.key, message_id)
            elif isinstance(op, Move):
                self.relocate(op.queue, op.message.message_id, loc)

    def _put(self, queue: str, message_id: str, loc: Location) -> None:
        entries = self.queues.setdefault(queue, {})
        old = entries.get(message_id)
        if old is None:
            self.messages += 1
            # A re-added id keeps its place (and position), as the dict assignment below does.
            self.orders.setdefault(queue, QueueOrder()).add(message_id, self._next_position)
            self._next_position += 1
        else:
            self.live[old.file] -= 1
        entries[message_id] = loc
        self.live[loc.file] += 1

    def _drop(self, queue: str, message_id: str) -> None:
        entries = self.queues.get(queue)
        if entries is None:
            return
        loc = entries.pop(message_id, None)
        if loc is None:
            return
        self.messages -= 1
        self._unlive(loc.file)
        self.orders[queue].remove(message_id)
        if not entries:
            del self.queues[queue]
            del self.orders[queue]

    def relocate(self, queue: str, message_id: str, loc: Location) -> bool:
        """Point a live message at its new copy, keeping its place; False if it is not live."""
        entries = self.queues.get(queue)
        if entries is None or message_id not in entries:
            return False
        self._unlive(entries[message_id].file)
        entries[message_id] = loc  # assignment to an existing key keeps its position
        self.live[loc.file] += 1
        return True

    def depths(self) -> dict[str, int]:
        """Messages stored per queue, in queue order (what `Recovered.depths` reports)."""
        return {queue: len(entries) for queue, entries in self.queues.items()}

    def find(self, keys: Iterable[Key]) -> dict[Key, Location]:
        """Where the live ones of `keys` are now (any thread)."""
        return locate_in(self.queues, keys)

    def _unlive(self, file: int) -> None:
        self.live[file] -= 1
        if self.live[file] <= 0:
            del self.live[file]

    def load(self, queues: Iterable[tuple[str, list[str], list[Location]]]) -> None:
        """Fill an empty index from a checkpoint's columns, a queue at a time (no per-message calls:
        this is most of a cold open's work)."""
        for queue, ids, locations in queues:
            entries = dict(zip(ids, locations, strict=True))
            if len(entries) != len(ids) or queue in self.queues:  # not what a checkpoint holds
                for message_id, loc in zip(ids, locations, strict=True):
                    self._put(queue, message_id, loc)
                continue
            if not entries:
                continue
            self.queues[queue] = entries
            first = self._next_position
            self._next_position += len(ids)
            self.orders[queue] = QueueOrder.of(ids, first)
            self.live.update(map(_FILE, locations))
            self.messages += len(ids)

    def located_in(self, file: int) -> list[tuple[str, str, Location]]:
        return [
            (queue, message_id, loc)
            for queue, entries in self.queues.items()
            for message_id, loc in entries.items()
            if loc.file == file
        ]

    def live_bytes(self) -> Counter[int]:
        """Per data file, the size of the distinct records holding live messages."""
        seen: set[tuple[int, int]] = set()
        result: Counter[int] = Counter()
        for entries in self.queues.values():
            for loc in entries.values():
                if (loc.file, loc.offset) not in seen:
                    seen.add((loc.file, loc.offset))
                    result[loc.file] += loc.length
        return result
