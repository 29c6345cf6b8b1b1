"""The in-memory index: live messages by queue (in order) → the record that holds each one.

Bodies are not kept here: they stay in the data files and are read back on demand (the heads
that open hands over, compaction, Store.read). A queue's messages are a QueueEntries (stores/entries.py):
a few bytes of arrays per message, no object per message but its id. Only the writer thread
mutates an Index; readers in other threads use only `find` and `orders`, lookups that need no
lock (see stores/entries.py).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from operator import rshift
from typing import cast

from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    PutSubscription,
    RemoveMessage,
)
from stores.entries import FILE_SHIFT, Packed, Prefixes, QueueEntries, Streamed, place
from stores.journal.records import JournalOp, Move
from stores.reads import Key as Key  # re-exported: the journal's modules name them from here
from stores.reads import Location as Location
from stores.reads import locate_in

# One queue of a checkpoint, as `load` takes it: its name and packed columns (stores/entries.py).
Columns = tuple[str, Packed]
# What a checkpoint keeps of an index beside its queues: data file -> (live messages, bytes of
# their records), and the records holding several, place -> [live messages, length].
Records = tuple[dict[int, tuple[int, int]], dict[int, list[int]]]


class Index:
    def __init__(self, duplicate_window: int) -> None:
        self.queues: dict[str, QueueEntries] = {}  # in queue order
        self.prefixes = Prefixes()  # the message ids' prefixes, shared by the queues' keys
        self._next_position = 1
        self.subscriptions: dict[str, DurableSubscription] = {}
        self.producers: deque[str] = deque(maxlen=duplicate_window)
        self.live: Counter[int] = Counter()  # data file → live messages located in it
        self.messages = 0
        # Bytes of the distinct records holding live messages, per data file (compaction's measure),
        # kept as messages come and go: a record holding one live message is counted by it alone;
        # one holding several (a transaction, a fan-out, a MOVE) has its count here, place -> [live
        # messages, length], so no per-message set is ever built (it cost 150 bytes a message).
        self.held: Counter[int] = Counter()
        self.shared: dict[int, list[int]] = {}
        self._single = -1  # the place of the last record a message was put in, while it held one

    @property
    def orders(self) -> Mapping[str, QueueEntries]:
        """Each queue's store order with positions, for read_batch (the same entries)."""
        return self.queues

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
        entries = self.queues.get(queue)
        if entries is None:
            entries = self.queues[queue] = QueueEntries(self.prefixes)
        # A re-added live id keeps its place (and position): it is relocated. An id above every key
        # of the queue (nearly every add) cannot be live there: no lookup.
        key = entries.new_key(message_id)
        if key is None and self.relocate(queue, message_id, loc):
            return
        entries.add(message_id, self._next_position, loc, key)
        self._next_position += 1
        self.messages += 1
        self.live[loc.file] += 1
        self._hold(loc)

    def _drop(self, queue: str, message_id: str) -> None:
        entries = self.queues.get(queue)
        if entries is None:
            return
        loc = entries.remove(message_id)
        if loc is None:
            return
        self.messages -= 1
        self._unlive(loc.file)
        self._release(loc)
        if not entries:
            del self.queues[queue]

    def relocate(self, queue: str, message_id: str, loc: Location) -> bool:
        """Point a live message at its new copy, keeping its place; False if it is not live."""
        entries = self.queues.get(queue)
        old = None if entries is None else entries.relocate(message_id, loc)
        if old is None:
            return False
        self._unlive(old.file)
        self._release(old)
        self.live[loc.file] += 1
        self._hold(loc)
        return True

    def _hold(self, loc: Location) -> None:
        """One more live message is in the record at `loc`."""
        at = place(loc.file, loc.offset)
        shared = self.shared.get(at)
        if shared is not None:
            shared[0] += 1
        elif at == self._single:  # a second message of the record just put
            self.shared[at] = [2, loc.length]
            self._single = -1
        else:
            self._single = at
            self.held[loc.file] += loc.length

    def _release(self, loc: Location) -> None:
        """One live message less in the record at `loc`."""
        at = place(loc.file, loc.offset)
        shared = self.shared.get(at)
        if shared is not None:
            shared[0] -= 1
            if shared[0] > 0:
                return
            del self.shared[at]
        elif at == self._single:
            self._single = -1
        self.held[loc.file] -= loc.length
        if self.held[loc.file] <= 0:
            del self.held[loc.file]

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

    def load(self, prefixes: list[str], queues: Iterable[tuple[str, Packed | Streamed]],
             records: Records | None = None) -> None:
        """Fill an empty index from a checkpoint's prefixes and columns, a queue at a time (no
        per-message calls: this is most of a cold open's work), and its `held` and `shared`
        (None: worked out, see `recount`)."""
        if self.queues:
            raise ValueError("an index is loaded only while empty")
        self.prefixes = Prefixes(prefixes)
        for queue, packed in queues:
            entries = QueueEntries.of(self.prefixes, packed, self._next_position)
            if not entries:
                continue
            if queue in self.queues:  # not what a checkpoint holds: added as if replayed
                for message_id, loc in entries.items():
                    self._put(queue, message_id, loc)
                continue
            self.queues[queue] = entries
            self._next_position += len(entries)
            if records is None:  # version 1: whole columns
                self.live.update(map(rshift, cast(Packed, packed).places, repeat(FILE_SHIFT)))
            self.messages += len(entries)
        if records is None:
            self.recount()
        else:  # a million messages' files counted from the places cost a third of a second
            self.live = Counter({n: count for n, (count, _) in records[0].items()})
            self.held = Counter({n: size for n, (_, size) in records[0].items()})
            self.shared = {at: list(shared) for at, shared in records[1].items()}

    def located_in(self, file: int) -> list[tuple[str, str, Location]]:
        return [(queue, message_id, loc)
                for queue, entries in self.queues.items()
                for message_id, loc in entries.in_file(file)]

    def live_bytes(self) -> Counter[int]:
        """Per data file, the size of the distinct records holding live messages."""
        return Counter(self.held)

    def recount(self) -> None:
        """Work `held` and `shared` out from the queues (after a load that did not carry them: a
        version 1 checkpoint; it costs a set of every record, once)."""
        counts: Counter[tuple[int, int]] = Counter()
        for entries in self.queues.values():
            counts.update(entries.placed())
        self.held, self.shared, self._single = Counter(), {}, -1
        for (at, length), count in counts.items():
            self.held[at >> FILE_SHIFT] += length
            if count > 1:
                self.shared[at] = [count, length]
