"""One queue's live messages in the journal's index: store order, positions and locations, compact.

A million live messages are most of a broker's memory with a paged backlog, so a message costs
what it must and no object of its own beyond its id: one slot in four parallel arrays in store
order (position, id, place = file << 40 | offset, record length) and one dict entry, id -> the
*group* of its slot (slot // GROUP). A group's number is one int object shared by its GROUP
slots, so no int is made per message; the slot itself is found within the group by `list.index`
over at most GROUP ids, in C. A removed message's id becomes None in its slot (a tombstone) until
tombstones are most of the arrays; then they are rebuilt, so a removal costs O(1) amortized and
a page walks no more dead slots than live ones.

One writer thread changes a QueueEntries; readers in other threads call `after`, `position`,
`locate` and `__contains__` without a lock, which is safe under CPython's GIL as stores/order.py
explains for its QueueOrder: the writer appends a slot's other columns before its position (a
reader finds slots through the positions, so it never sees half of one), tombstones with one
store, and swaps a rebuilt dict and arrays in as one tuple (a reader that holds the old one sees
the queue as it was when it started, a moment its read can be ordered at). A relocation writes
two columns of a slot in place; `_moving` counts those writes (odd while one is under way), so a
reader that raced one reads again rather than pair a new place with an old length.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator
from functools import partial
from itertools import chain, compress, islice, repeat
from operator import is_not

from stores.reads import Location

FILE_SHIFT = 40  # a place is file << 40 | offset: data files stay far below 1 TiB, numbers below 2**23
MAX_FILE = (1 << 23) - 1
MAX_OFFSET = (1 << FILE_SHIFT) - 1
MAX_LENGTH = (1 << 32) - 1  # lengths are unsigned 32-bit (a record's payload is at most 256 MiB)
GROUP = 16  # slots sharing one group number: a lookup compares at most this many ids

# (live id -> group, positions, ids (None: removed), places, lengths); one slot per message.
State = tuple[dict[str, int], "array[int]", list[str | None], "array[int]", "array[int]"]


_alive = partial(is_not, None)  # a slot's id is not a tombstone (an id may be "": not truthiness)


def place(file: int, offset: int) -> int:
    return file << FILE_SHIFT | offset


def location(packed: int, length: int) -> Location:
    return Location(packed >> FILE_SHIFT, packed & MAX_OFFSET, length)


def _state(live_ids: list[str | None], positions: array[int], places: array[int],
           lengths: array[int]) -> State:
    groups = chain.from_iterable(map(repeat, range(len(live_ids) // GROUP + 1), repeat(GROUP)))
    live = dict(zip(live_ids, islice(groups, len(live_ids)), strict=True))
    return live, positions, live_ids, places, lengths  # type: ignore[return-value]


class QueueEntries:
    __slots__ = ("_state", "_dead", "_moving", "_group")
    SLACK = 64  # dead slots tolerated beyond the live ones before a rebuild

    def __init__(self) -> None:
        self._state: State = ({}, array("q"), [], array("q"), array("I"))
        self._dead = 0
        self._moving = 0
        self._group = 0  # the group number of the last slot, one shared object

    @classmethod
    def of(cls, ids: list[str], places: array[int], lengths: array[int], first: int) -> QueueEntries:
        """`ids` in store order at positions first, first + 1, ...; ids must be distinct (a
        checkpoint's queue: check `len` against theirs)."""
        entries = cls()
        if lengths.typecode != "I":
            lengths = array("I", lengths)
        entries._state = _state(ids, array("q", range(first, first + len(ids))), places, lengths)  # type: ignore[arg-type]
        entries._group = len(ids) // GROUP
        return entries

    def __len__(self) -> int:
        return len(self._state[0])

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._state[0]

    def __iter__(self) -> Iterator[str]:
        """Live ids in store order."""
        return filter(_alive, list(self._state[2]))  # type: ignore[arg-type]

    def items(self) -> Iterator[tuple[str, Location]]:
        """(id, location) of the live messages in store order."""
        _, _, ids, places, lengths = self._state
        for message_id, packed, length in zip(ids, places, lengths, strict=True):
            if message_id is not None:
                yield message_id, location(packed, length)

    def add(self, message_id: str, position: int, loc: Location) -> None:
        """Append a message that is not live here at `position`, above every position given before."""
        live, positions, ids, places, lengths = self._state
        slot = len(ids)
        if slot // GROUP != self._group:
            self._group = slot // GROUP
        ids.append(message_id)
        places.append(place(loc.file, loc.offset))
        lengths.append(loc.length)
        positions.append(position)  # after the other columns: it makes the slot visible to readers
        live[message_id] = self._group

    def remove(self, message_id: str) -> Location | None:
        """Drop a live message; where it was (None: it was not live)."""
        state = self._state
        slot = _slot(state, message_id)
        if slot is None:
            return None
        live, _, ids, places, lengths = state
        ids[slot] = None
        del live[message_id]
        self._dead += 1
        if self._dead > len(live) + self.SLACK:
            self._rebuild()
        return location(places[slot], lengths[slot])

    def relocate(self, message_id: str, loc: Location) -> Location | None:
        """Point a live message at a new record, keeping its place; the old location (None: not live)."""
        _, _, _, places, lengths = state = self._state
        slot = _slot(state, message_id)
        if slot is None:
            return None
        old = location(places[slot], lengths[slot])
        self._moving += 1
        places[slot] = place(loc.file, loc.offset)
        lengths[slot] = loc.length
        self._moving += 1
        return old

    def position(self, message_id: str) -> int | None:
        state = self._state
        slot = _slot(state, message_id)
        return None if slot is None else state[1][slot]

    def locate(self, message_id: str) -> Location | None:
        """Where a live message is now (any thread); None if it is not live."""
        while True:
            moving = self._moving
            state = self._state
            slot = _slot(state, message_id)
            if slot is None:
                return None
            found = location(state[3][slot], state[4][slot])
            if moving % 2 == 0 and self._moving == moving:
                return found

    def after(self, position: int | None, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` live (position, id) pairs after `position` (None: from the start)."""
        _, positions, ids, _, _ = self._state
        i = 0 if position is None else bisect_right(positions, position)
        found: list[tuple[int, str]] = []
        end = len(positions)
        while i < end and len(found) < limit:
            message_id = ids[i]
            if message_id is not None:
                found.append((positions[i], message_id))
            i += 1
        return found

    def columns(self) -> tuple[list[str], array[int], array[int]]:
        """Copies of the live ids, places and lengths in store order (for a checkpoint; writer thread).
        A few C calls however many messages: the writer thread holds up commits meanwhile."""
        _, _, ids, places, lengths = self._state
        if not self._dead:
            return list(ids), array("q", places), array("I", lengths)  # type: ignore[arg-type]
        mask = list(map(_alive, ids))
        return (list(compress(ids, mask)), array("q", compress(places, mask)),  # type: ignore[arg-type]
                array("I", compress(lengths, mask)))

    def in_file(self, file: int) -> list[tuple[str, Location]]:
        """The live messages whose record is in data file `file`, in store order."""
        low, high = place(file, 0), place(file + 1, 0)
        return [(mid, loc) for mid, loc in self.items() if low <= place(loc.file, loc.offset) < high]

    def records(self) -> set[tuple[int, int]]:
        """The distinct records holding live messages, as (place, length)."""
        _, _, ids, places, lengths = self._state
        mask = list(map(_alive, ids))
        return set(zip(compress(places, mask), compress(lengths, mask), strict=True))

    def _rebuild(self) -> None:
        _, positions, ids, places, lengths = self._state
        mask = list(map(_alive, ids))
        live_ids: list[str | None] = list(compress(ids, mask))
        self._state = _state(live_ids, array("q", compress(positions, mask)),
                             array("q", compress(places, mask)), array("I", compress(lengths, mask)))
        self._group = (len(live_ids) - 1) // GROUP if live_ids else 0
        self._dead = 0


def _slot(state: State, message_id: str) -> int | None:
    """The slot of a live message in `state`; None if it is not live there."""
    live, positions, ids, _, _ = state
    group = live.get(message_id)
    if group is None:
        return None
    start = group * GROUP
    try:
        slot = ids.index(message_id, start, start + GROUP)
    except ValueError:  # removed since the lookup
        return None
    return slot if slot < len(positions) else None
