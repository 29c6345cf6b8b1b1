"""One queue's live messages in the journal's index: store order, positions and locations, compact.

A million live messages are most of a broker's memory with a paged backlog, so a message costs
what it must and no object of its own beyond its id: one dict entry (id -> position, the only
per-message int object) and one slot in four parallel arrays (position, id, place = file << 40 |
offset, record length), the slots in store order. Removed messages leave dead slots (their
position no longer matches the dict's) until they are most of the arrays; then the arrays are
rebuilt, so a removal costs O(1) amortized and a page walks no more dead slots than live ones.

One writer thread changes a QueueEntries; readers in other threads call `after`, `position`,
`locate` and `__contains__` without a lock, as stores/order.py explains for its QueueOrder: the
writer appends a slot's other columns before its position (a reader finds a slot through the
positions, so it never sees half of one) and swaps in rebuilt arrays as one tuple. A relocation
writes two columns of a slot in place; `_moving` counts those writes (odd while one is under
way), so a reader that raced one reads again rather than pair a new place with an old length.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from itertools import compress
from operator import eq

from stores.reads import Location

FILE_SHIFT = 40  # a place is file << 40 | offset: data files stay far below 1 TiB, numbers below 2**23
MAX_FILE = (1 << 23) - 1
MAX_OFFSET = (1 << FILE_SHIFT) - 1
_SLACK = 64  # dead slots tolerated beyond the live ones before a rebuild

# (positions, ids, places, lengths), one slot per message in store order, live and dead alike.
Run = tuple["array[int]", list[str], "array[int]", "array[int]"]


def place(file: int, offset: int) -> int:
    return file << FILE_SHIFT | offset


def location(packed: int, length: int) -> Location:
    return Location(packed >> FILE_SHIFT, packed & MAX_OFFSET, length)


class QueueEntries:
    __slots__ = ("_live", "_run", "_dead", "_moving")

    def __init__(self) -> None:
        self._live: dict[str, int] = {}  # live message id -> its position
        self._run: Run = (array("q"), [], array("q"), array("q"))
        self._dead = 0
        self._moving = 0

    @classmethod
    def of(cls, ids: list[str], places: array[int], lengths: array[int], first: int) -> QueueEntries:
        """Distinct `ids` in store order at positions first, first + 1, ... (a checkpoint's queue)."""
        entries = cls()
        positions = range(first, first + len(ids))
        entries._run = (array("q", positions), ids, places, lengths)
        entries._live = dict(zip(ids, positions, strict=True))
        return entries

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._live

    def __iter__(self) -> Iterator[str]:
        """Live ids in store order."""
        for _, message_id, _, _ in self._live_slots():
            yield message_id

    def items(self) -> Iterator[tuple[str, Location]]:
        """(id, location) of the live messages in store order."""
        for _, message_id, packed, length in self._live_slots():
            yield message_id, location(packed, length)

    def add(self, message_id: str, position: int, loc: Location) -> None:
        """Append a message that is not live here at `position`, above every position given before."""
        positions, ids, places, lengths = self._run
        ids.append(message_id)
        places.append(place(loc.file, loc.offset))
        lengths.append(loc.length)
        positions.append(position)  # last: it makes the slot visible to readers
        self._live[message_id] = position

    def remove(self, message_id: str) -> Location | None:
        """Drop a live message; where it was (None: it was not live)."""
        loc = self.locate(message_id)
        if loc is None:
            return None
        del self._live[message_id]
        self._dead += 1
        if self._dead > len(self._live) + _SLACK:
            self._rebuild()
        return loc

    def relocate(self, message_id: str, loc: Location) -> Location | None:
        """Point a live message at a new record, keeping its place; the old location (None: not live)."""
        slot = self._slot(message_id, self._run)
        if slot is None:
            return None
        _, _, places, lengths = self._run
        old = location(places[slot], lengths[slot])
        self._moving += 1
        places[slot] = place(loc.file, loc.offset)
        lengths[slot] = loc.length
        self._moving += 1
        return old

    def position(self, message_id: str) -> int | None:
        return self._live.get(message_id)

    def locate(self, message_id: str) -> Location | None:
        """Where a live message is now (any thread); None if it is not live."""
        while True:
            moving = self._moving
            run = self._run
            slot = self._slot(message_id, run)
            if slot is None:
                return None
            found = location(run[2][slot], run[3][slot])
            if moving % 2 == 0 and self._moving == moving:
                return found

    def after(self, position: int | None, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` live (position, id) pairs after `position` (None: from the start)."""
        positions, ids, _, _ = self._run
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

    def columns(self) -> tuple[list[str], array[int], array[int]]:
        """Copies of the live ids, places and lengths in store order (for a checkpoint; writer thread).
        A few C calls however many messages: the writer thread holds up commits meanwhile."""
        _, ids, places, lengths = self._run
        if not self._dead:
            return list(ids), array("q", places), array("q", lengths)
        mask = self._mask(self._run)
        return (list(compress(ids, mask)), array("q", compress(places, mask)),
                array("q", compress(lengths, mask)))

    def in_file(self, file: int) -> list[tuple[str, Location]]:
        """The live messages whose record is in data file `file`, in store order."""
        run = self._run
        low, high = place(file, 0), place(file + 1, 0)
        return [(run[1][slot], location(run[2][slot], run[3][slot]))
                for slot in compress(range(len(run[0])), self._mask(run)) if low <= run[2][slot] < high]

    def records(self) -> set[tuple[int, int]]:
        """The distinct records holding live messages, as (place, length)."""
        run = self._run
        mask = self._mask(run)
        return set(zip(compress(run[2], mask), compress(run[3], mask), strict=True))

    def _mask(self, run: Run) -> list[bool]:
        positions, ids, _, _ = run
        return list(map(eq, map(self._live.get, ids), positions))

    def _slot(self, message_id: str, run: Run) -> int | None:
        position = self._live.get(message_id)
        if position is None:
            return None
        positions = run[0]
        slot = bisect_left(positions, position)
        if slot == len(positions) or positions[slot] != position:
            return None  # removed (and rebuilt away) since the lookup
        return slot

    def _live_slots(self) -> Iterator[tuple[int, str, int, int]]:
        run = self._run
        for slot in compress(range(len(run[0])), self._mask(run)):
            yield run[0][slot], run[1][slot], run[2][slot], run[3][slot]

    def _rebuild(self) -> None:
        mask = self._mask(self._run)
        positions, ids, places, lengths = self._run
        self._run = (array("q", compress(positions, mask)), list(compress(ids, mask)),
                     array("q", compress(places, mask)), array("q", compress(lengths, mask)))
        self._dead = 0
