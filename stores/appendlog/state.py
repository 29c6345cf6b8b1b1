"""The in-memory model the append log replays into, and serves recovery and compaction from.

Pure: no I/O. It keeps an index, never the messages: per live message its estimated size, the
record it was last written in and its place in store order, as one QueueEntries per queue
(stores/entries.py: about 13 bytes a message, sized). The store reads messages from those records
(Store.read, the heads an open hands over, compaction). The sizes add up to the *live bytes*
(what a compaction snapshot would occupy), which the store compares with the bytes on disk to
decide when to compact. A message's own size is kept, not its record's: a record (one group's
BATCH, a snapshot chunk) holds many messages, and one live message of a chunk is not the chunk.

Only the writer thread changes a LogState once the store is open; readers in other threads use
only `find` and `orders`, lookups that need no lock (see stores/entries.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby
from typing import Any

from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    Op,
    PutSubscription,
    RemoveMessage,
    StoredMessage,
)
from stores.entries import FILE_SHIFT, Packed, Prefixes, QueueEntries
from stores.reads import Key, Location, locate_in

_OVERHEAD = 16  # per-entry bytes of msgpack framing, roughly


def message_size(queue: str, message: StoredMessage) -> int:
    """Approximate encoded size; cheap (no encoding), used only for the compaction heuristic."""
    return fields_size(queue, [message.message_id, message.destination, message.headers, message.body,
                               message.producer_id])


def fields_size(queue: str, fields: list[Any]) -> int:
    """`message_size` of a message's [message_id, destination, headers, body, producer_id], as
    replay decodes them (checked: str keys and values). Joined in C rather than summed in Python."""
    message_id, destination, headers, body, producer_id = fields
    named = len("".join(headers)) + len("".join(headers.values())) + 2 * len(headers)
    ids = len(message_id) + len(destination) + len(producer_id or "")
    return len(body) + named + ids + len(queue) + _OVERHEAD


def subscription_size(sub: DurableSubscription) -> int:
    named = len(sub.key) + len(sub.client_id) + len(sub.name) + len(sub.destination) + len(sub.owner or "")
    return named + _OVERHEAD


class LogState:
    def __init__(self, duplicate_window: int) -> None:
        self.window = duplicate_window
        self.queues: dict[str, QueueEntries] = {}  # in queue order; each in store order
        self.prefixes = Prefixes()  # the message ids' prefixes, shared by the queues' keys
        self._next_position = 1
        self.subscriptions: dict[str, DurableSubscription] = {}
        self.producers: dict[str, None] = {}  # an ordered set, oldest first
        self.messages = 0
        self.live_bytes = 0
        self.segment_live: dict[int, int] = {}  # segment -> live bytes of the messages it holds

    def restore(self, prefixes: list[str], queues: list[tuple[str, Packed]],
                subscriptions: Iterable[DurableSubscription], producers: Iterable[str]) -> None:
        """Become a checkpoint's state (an empty LogState; the columns are checked, sized). The
        counts are worked out, not stored: they are functions of what is live."""
        self.prefixes = Prefixes(prefixes)
        for queue, packed in queues:
            if packed.keys and packed.sizes is not None:  # replay never keeps an empty queue
                self.queues[queue] = QueueEntries.of(self.prefixes, packed, self._next_position)
                self._next_position += len(packed.keys)
                self.messages += len(packed.keys)
                self.live_bytes += sum(packed.sizes)
                self._count_segments(packed.places, packed.sizes)
        for sub in subscriptions:
            self.put_subscription(sub)
        for producer_id in producers:
            self.note_producer(producer_id)

    def _count_segments(self, places: Sequence[int], sizes: Sequence[int]) -> None:
        """Add a restored queue's sizes to `segment_live`, a run of one segment's places at a time
        (a queue's records mostly follow each other: few runs, each summed in C)."""
        live, at = self.segment_live, 0
        for file, run in groupby([where >> FILE_SHIFT for where in places]):
            count = len(list(run))
            live[file] = live.get(file, 0) + sum(sizes[at : at + count])
            at += count

    @property
    def orders(self) -> Mapping[str, QueueEntries]:
        """Each queue's store order with positions, for read_batch (the same entries)."""
        return self.queues

    def apply(self, ops: Sequence[Op], record: Location) -> None:
        """Apply one BATCH record's ops; `record` is where that record lies."""
        for op in ops:
            if isinstance(op, AddMessage):
                self.add(op.queue, op.message, record)
            elif isinstance(op, RemoveMessage):
                self.remove(op.queue, op.message_id)
            elif isinstance(op, PutSubscription):
                self.put_subscription(op.subscription)
            elif isinstance(op, DropSubscription):
                self.drop_subscription(op.key)

    def apply_tracked(self, ops: Sequence[Op], record: Location) -> list[Op]:
        """`apply`, returning the changes that took effect, in order, for a follower's sink: a
        removal of a message that is not live is left out, and an add of a live id (which replaces
        it at the end) is its removal and then the add."""
        changes: list[Op] = []
        for op in ops:
            if isinstance(op, AddMessage | RemoveMessage):
                live = op.queue in self.queues and self._id(op) in self.queues[op.queue]
                if live:
                    changes.append(RemoveMessage(op.queue, self._id(op)))
                if isinstance(op, AddMessage):
                    changes.append(op)
            else:
                changes.append(op)
            self.apply([op], record)
        return changes

    @staticmethod
    def _id(op: AddMessage | RemoveMessage) -> str:
        return op.message.message_id if isinstance(op, AddMessage) else op.message_id

    def same_content(self, other: LogState) -> bool:
        """The same messages in the same order per queue and the same subscriptions (what a
        follower's sink holds); locations, positions and the producer window aside."""
        if list(self.queues) != list(other.queues) or self.subscriptions != other.subscriptions:
            return False
        return all(len(mine) == len(theirs) and list(mine) == list(theirs)
                   for mine, theirs in zip(self.queues.values(), other.queues.values(), strict=True))

    def add(self, queue: str, message: StoredMessage, record: Location, note_producer: bool = True) -> None:
        """`note_producer=False` when restoring a snapshot, whose producer chunk carries the window."""
        self._put(queue, message.message_id, message_size(queue, message), record)
        if note_producer and message.producer_id is not None:
            self.note_producer(message.producer_id)

    def apply_items(self, items: list[list[Any]], record: Location) -> None:
        """`apply` for a BATCH's checked ADD and REMOVE op arrays (records.replay_items): replay's,
        which never builds the messages (their fields give the sizes, their record the place)."""
        for item in items:
            if item[0] == "A":
                fields = item[2]
                self._put(item[1], fields[0], fields_size(item[1], fields), record)
                if fields[4] is not None:
                    self.note_producer(fields[4])
            else:
                self.remove(item[1], item[2])

    def _put(self, queue: str, message_id: str, size: int, record: Location) -> None:
        entries = self.queues.get(queue)
        # An id above every key of the queue (nearly every add) cannot be live there: no lookup.
        key = None if entries is None else entries.new_key(message_id)
        if entries is not None and key is None:
            self.remove(queue, message_id)  # a re-added id replaces the old copy, at the end
            entries = self.queues.get(queue)  # gone if that emptied it
        if entries is None:
            entries = self.queues[queue] = QueueEntries(self.prefixes, sized=True)
        entries.add(message_id, self._next_position, record, key, size)
        self._next_position += 1
        self.messages += 1
        self.live_bytes += size
        live = self.segment_live
        live[record.file] = live.get(record.file, 0) + size

    def remove(self, queue: str, message_id: str) -> None:
        entries = self.queues.get(queue)
        popped = None if entries is None else entries.pop(message_id)
        if entries is None or popped is None:
            return  # removal is idempotent
        if not entries:
            del self.queues[queue]
        self.messages -= 1
        self.live_bytes -= popped[1]
        self._segment_less(popped[0].file, popped[1])

    def _segment_less(self, file: int, size: int) -> None:
        left = self.segment_live[file] - size
        if left > 0:
            self.segment_live[file] = left
        else:
            del self.segment_live[file]

    def relocate(self, queue: str, message_id: str, record: Location) -> None:
        """Compaction wrote the live message again: point at the new copy (its place is unchanged)."""
        entries = self.queues[queue]
        size = entries.size(message_id)
        old = entries.relocate(message_id, record)
        if old is not None:
            self._segment_less(old.file, size)
            self.segment_live[record.file] = self.segment_live.get(record.file, 0) + size

    @property
    def fixed_bytes(self) -> int:
        """The live bytes besides messages' (subscriptions, the duplicate window): what every
        compaction snapshot copies."""
        return self.live_bytes - sum(self.segment_live.values())

    def oldest_below(self, keep: int) -> bool:
        """Whether, in every queue, the messages before segment `keep` are its oldest: a compaction
        may copy them and keep the segments from `keep` on (what replay of a snapshot that keeps
        segments assumes: `after_snapshot`). Not so while copies an earlier compaction made, in
        later segments, are older than messages it kept."""
        return all(entries.below_first(keep) for entries in self.queues.values())

    def after_snapshot(self, snapshot: LogState, keep: int) -> LogState:
        """The state after a snapshot that replaced only the segments before `keep`: its messages
        (those that were before `keep`) first, then this replayed state's messages in segments from
        `keep` on, which are newer; the snapshot's subscriptions and producers. In place (self)
        when this state holds exactly the snapshot's messages before `keep` (a follower, or a cold
        recovery that found the replaced segments still there); else rebuilt."""
        if self._relocated_to(snapshot, keep):
            self.live_bytes = snapshot.fixed_bytes + sum(self.segment_live.values())
            self.subscriptions, self.producers = snapshot.subscriptions, snapshot.producers
            return self
        merged = LogState(self.window)
        merged.subscriptions, merged.producers = snapshot.subscriptions, snapshot.producers
        merged.live_bytes = snapshot.fixed_bytes
        for queue in list(self.queues) + [q for q in snapshot.queues if q not in self.queues]:
            for source, lowest in ((snapshot, 0), (self, keep)):
                entries = source.queues.get(queue)
                for message_id, loc, size in entries.sized_items() if entries is not None else ():
                    if loc.file >= lowest:
                        merged._put(queue, message_id, size, loc)
        return merged

    def _relocated_to(self, snapshot: LogState, keep: int) -> bool:
        """If every message of `snapshot` is live here before `keep` with the same size, and those
        are all there are before `keep` (the sizes add up), point them at the snapshot's copies."""
        below = sum(size for file, size in self.segment_live.items() if file < keep)
        if below != sum(snapshot.segment_live.values()):
            return False
        moves: list[tuple[str, str, Location]] = []
        for queue, entries in snapshot.queues.items():
            mine = self.queues.get(queue)
            if mine is None:
                return False
            for message_id, loc, size in entries.sized_items():
                where = mine.locate(message_id)
                if where is None or where.file >= keep or mine.size(message_id) != size:
                    return False
                moves.append((queue, message_id, loc))
        for queue, message_id, loc in moves:
            self.relocate(queue, message_id, loc)
        return True

    def find(self, keys: Iterable[Key]) -> dict[Key, Location]:
        """Where the live ones of `keys` are now (any thread)."""
        return locate_in(self.queues, keys)

    def put_subscription(self, sub: DurableSubscription) -> None:
        old = self.subscriptions.pop(sub.key, None)
        if old is not None:
            self.live_bytes -= subscription_size(old)
        self.subscriptions[sub.key] = sub
        self.live_bytes += subscription_size(sub)

    def drop_subscription(self, key: str) -> None:
        old = self.subscriptions.pop(key, None)
        if old is not None:
            self.live_bytes -= subscription_size(old)
        for message_id in list(self.queues.get(key, ())):
            self.remove(key, message_id)

    def note_producer(self, producer_id: str) -> None:
        """Remember the last `window` producer ids (duplicate detection), even after removal."""
        if self.window <= 0:
            return
        if producer_id in self.producers:
            del self.producers[producer_id]
            self.live_bytes -= len(producer_id) + 2
        self.producers[producer_id] = None
        self.live_bytes += len(producer_id) + 2
        while len(self.producers) > self.window:
            oldest = next(iter(self.producers))
            del self.producers[oldest]
            self.live_bytes -= len(oldest) + 2
