"""Store order of one queue, for reading messages back a page at a time (Store.read_batch).

Pure and in memory: each live message id has a *position*, an integer that grows in the order
messages were added, so a reader can resume after a position even once the message that held it
is gone (a cursor's last message is often consumed before it asks for the next page).

One writer thread changes a QueueOrder; reader threads call `after` and `position` at the same
time without a lock. That is safe under CPython's GIL because a reader only does single dict
lookups, list indexing and a bisect, each atomic, and the writer only appends to the lists a
reader may be walking (ids first, so no position is visible before its id) or replaces them
with new lists, never reorders them in place. A reader that walks a replaced list sees the
order as it was when it started, which is a moment the read can be ordered at.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from typing import Protocol

# Removed ids stay in the lists until they are most of it; then the lists are rebuilt, so each
# removal costs O(1) amortized and a page never walks more dead entries than live ones (plus this).
_SLACK = 64


class Order(Protocol):
    """What a page read needs of a queue's order (QueueOrder here, the journal's QueueEntries)."""

    def after(self, position: int | None, limit: int) -> list[tuple[int, str]]: ...

    def position(self, message_id: str) -> int | None: ...


class QueueOrder:
    __slots__ = ("_live", "_run", "_dead")

    def __init__(self) -> None:
        self._live: dict[str, int] = {}  # live message id -> its position
        # (positions, ids) in store order, live and removed alike; one tuple so a rebuild swaps
        # both lists at once for a reader.
        self._run: tuple[array[int], list[str]] = (array("q"), [])
        self._dead = 0

    def __len__(self) -> int:
        return len(self._live)

    @classmethod
    def of(cls, ids: list[str], first: int) -> QueueOrder:
        """Distinct `ids` in store order at positions first, first + 1, ... (a bulk `add`)."""
        order = cls()
        positions = range(first, first + len(ids))
        order._run = (array("q", positions), list(ids))
        order._live = dict(zip(ids, positions, strict=True))
        return order

    def add(self, message_id: str, position: int) -> None:
        """Append `message_id` at `position`, which must exceed every position given before."""
        if message_id in self._live:
            self.remove(message_id)
        positions, ids = self._run
        ids.append(message_id)
        positions.append(position)
        self._live[message_id] = position

    def remove(self, message_id: str) -> None:
        if self._live.pop(message_id, None) is None:
            return
        self._dead += 1
        if self._dead > len(self._live) + _SLACK:
            self._rebuild()

    def position(self, message_id: str) -> int | None:
        return self._live.get(message_id)

    def after(self, position: int | None, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` live (position, id) pairs after `position` (None: from the start)."""
        positions, ids = self._run
        live = self._live
        i = 0 if position is None else bisect_right(positions, position)
        found: list[tuple[int, str]] = []
        end = len(positions)
        while i < end and len(found) < limit:
            message_id = ids[i]
            if live.get(message_id) == positions[i]:
                found.append((positions[i], message_id))
            i += 1
        return found

    def _rebuild(self) -> None:
        positions, ids = self._run
        live = self._live
        keep = [i for i in range(len(positions)) if live.get(ids[i]) == positions[i]]
        self._run = (array("q", (positions[i] for i in keep)), [ids[i] for i in keep])
        self._dead = 0
