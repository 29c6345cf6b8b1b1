"""Fair queueing of pending writes between their sources (docs/fairness.md, "Group commits").

A group commit writes what is pending when it starts. Taken first come, first served, a producer
with 128 writes pending puts them all ahead of another connection's one write, and that one write
then waits for them to be written, synced and completed. Here each source (the broker uses the
queue a SEND is written to) has its own FIFO; a group takes at most `share` writes of each source
while more than one source has writes pending, so a source with one write pending always goes into
the very next group beside bounded portions of the busy ones. A source alone takes up to `limit` at
once, as before: nobody waits for it, and its throughput is that of one large group.

In a group, the sources with the fewest writes come first: their futures are resolved first, so
their completions are not queued behind the done-callbacks of a large producer's. Each source's
writes keep their order: so a queue's store order stays its SEND order, which its cursor needs
(broker/engine/cursor.py). Between queues there is no order to keep: a session's RECEIPTs and
dispatches still run in its frame order (broker/engine/ordering.py), each after its own write.

Writes that must keep their place among everyone's (a message to several queues, a transaction, a
durable subscription made or dropped, a move to the DLQ) come from the ORDERED source: nothing
submitted after one is written before it, and it is written only after everything submitted before
it.

Pure: no I/O, no clock; the caller serializes access (the committer takes a lock, since groups are
taken on its writer thread).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
ORDERED = None  # the source whose writes keep their place among everyone's (a barrier)


class FairQueue(Generic[T]):
    def __init__(self, share: int, limit: int) -> None:
        if share < 1 or limit < share:
            raise ValueError(f"need 1 <= share <= limit, got share={share}, limit={limit}")
        self.share = share
        self.limit = limit
        # Insertion order is the round-robin order: a source that keeps writes past a group goes
        # to the back, so under `limit` nobody is left out of group after group.
        self._sources: dict[Hashable, deque[tuple[int, T]]] = {}
        self._ordered: deque[tuple[int, T]] = deque()
        self._seq = itertools.count()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def push(self, source: Hashable, item: T) -> None:
        entry = (next(self._seq), item)
        self._count += 1
        if source is ORDERED:
            self._ordered.append(entry)
            return
        pending = self._sources.get(source)
        if pending is None:
            pending = self._sources[source] = deque()
        pending.append(entry)

    def take(self) -> list[T]:
        """The next group: each source's oldest writes, at most `share` each when several have
        some, at most `limit` in all, the sources with the fewest taken first; then the ORDERED
        writes that nothing pending was submitted before."""
        sources, ordered = self._sources, self._ordered
        barrier = ordered[0][0] if ordered else None
        eligible = [s for s, p in sources.items() if barrier is None or p[0][0] < barrier]
        share = self.limit if len(eligible) == 1 else self.share
        room = self.limit
        portions: list[list[T]] = []
        for source in eligible:
            if room == 0:
                break
            pending = sources.pop(source)
            portion: list[T] = []
            most = min(share, room)
            while pending and len(portion) < most and (barrier is None or pending[0][0] < barrier):
                portion.append(pending.popleft()[1])
            portions.append(portion)
            room -= len(portion)
            if pending:
                sources[source] = pending  # to the back of the round
        portions.sort(key=len)  # stable: equal portions keep the round's order
        group = [item for portion in portions for item in portion]
        first = min((p[0][0] for p in sources.values()), default=None)
        while ordered and room > 0 and (first is None or ordered[0][0] < first):
            group.append(ordered.popleft()[1])
            room -= 1
        self._count -= len(group)
        return group
