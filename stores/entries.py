"""One queue's live messages in a store's index: store order, positions and locations, compact.

Both the journal and the append log keep their index in these. A million live messages are most
of a broker's memory with a paged backlog, so a message costs about 29 bytes of arrays and no
object of its own: one slot in five parallel columns in store order (key, flag, position, place
= file << 40 | offset, record length). A *sized* QueueEntries (the append log's) has a sixth
column, the message's own estimated size, 4 bytes more: its records hold many messages, so a
record's length says nothing of what one message would occupy in a compaction snapshot.

The key is the message id itself, packed: a broker's ids are one prefix per broker run followed
by a counter (`ID:name-3f9a...-17`), so an id that ends in a canonical decimal counter below
2**40 is stored as prefix number << 40 | counter, the prefix's number coming from a table the
whole index shares (`Prefixes`, at most MAX_PREFIXES of them). Ids of one prefix arrive in
counter order and a later prefix has a higher number, so the keys of a queue's slots are
increasing and an id is found by bisecting the key column (in C: about twenty comparisons for a
million messages), no hash table at all. An id that does not fit (no counter, a lower key than
the queue's highest, e.g. a message moved to the DLQ or committed late, or a prefix past the
table's limit) is an *extra*: its slot's flag says so, its key repeats the slot before's (the
column stays sorted) and the id is kept as a string in two small dicts. Every lookup is exact:
a key is made only of an id that can be spelled back from it character for character.

A removed message's flag becomes DEAD (a tombstone) until tombstones are most of the columns;
then they are rebuilt, so a removal costs O(1) amortized and a page walks no more dead slots
than live ones.

One writer thread changes a QueueEntries; readers in other threads call `after`, `position`,
`locate` and `__contains__` without a lock, which is safe under CPython's GIL as stores/order.py
explains: the writer appends a slot's other columns before its position (a
reader finds slots through the positions, so it never sees half of one), tombstones with one
store, and swaps rebuilt columns in as one tuple (a reader that holds the old one sees the queue
as it was when it started, a moment its read can be ordered at). A relocation writes two columns
of a slot in place; `_moving` counts those writes (odd while one is under way), so a reader that
raced one reads again rather than pair a new place with an old length.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from itertools import compress
from typing import NamedTuple

from stores.reads import Location

FILE_SHIFT = 40  # a place is file << 40 | offset: data files stay far below 1 TiB, numbers below 2**23
MAX_FILE = (1 << 23) - 1
MAX_OFFSET = (1 << FILE_SHIFT) - 1
MAX_LENGTH = (1 << 32) - 1  # lengths are unsigned 32-bit (a record's payload is at most 256 MiB)
COUNTER_SHIFT = 40  # a key is prefix number << 40 | counter
MAX_COUNTER = (1 << COUNTER_SHIFT) - 1
MAX_COUNTER_DIGITS = 12  # 999,999,999,999 < 2**40: twelve digits always fit
MAX_PREFIXES = 1 << 16  # one per broker run that wrote here; later ones' ids are extras
DIGITS = "0123456789"
DEAD, KEYED, EXTRA = 0, 1, 2  # a slot's flag

# (keys, flags, positions, places, lengths, extra id -> slot, slot -> extra id, sizes); one slot per
# message (sizes stays empty unless the entries are sized).
State = tuple["array[int]", bytearray, "array[int]", "array[int]", "array[int]",
              dict[str, int], dict[int, str], "array[int]"]


class Packed(NamedTuple):
    """A queue's live messages as a checkpoint holds them (FORMAT.md section 3), in store order:
    keys (an extra's is any number), places, lengths, (index, id) of the extras, in order, and
    the sizes of sized entries (else None)."""

    keys: array[int]
    places: array[int]
    lengths: array[int]
    extras: list[tuple[int, str]]
    sizes: array[int] | None = None


def place(file: int, offset: int) -> int:
    return file << FILE_SHIFT | offset


def location(packed: int, length: int) -> Location:
    return Location(packed >> FILE_SHIFT, packed & MAX_OFFSET, length)


def split(message_id: str) -> tuple[str, int] | None:
    """(prefix, counter) of an id that ends in a canonical decimal counter that fits; else None."""
    head = message_id.rstrip(DIGITS)
    digits = len(message_id) - len(head)
    if not 0 < digits <= MAX_COUNTER_DIGITS or (digits > 1 and message_id[len(head)] == "0"):
        return None
    return head, int(message_id[len(head):])


class Prefixes:
    """The id prefixes of an index, numbered in order of first use (append-only: readers in other
    threads look up while the writer adds, safe under the GIL)."""

    __slots__ = ("names", "numbers")

    def __init__(self, names: list[str] | None = None) -> None:
        self.names: list[str] = list(names or ())
        self.numbers: dict[str, int] = {name: n for n, name in enumerate(self.names)}

    def key(self, message_id: str, add: bool = False) -> int | None:
        """The id's key (None: it has none; without `add`, also when its prefix is unknown)."""
        parts = split(message_id)
        if parts is None:
            return None
        head, counter = parts
        number = self.numbers.get(head)
        if number is None:
            if not add or len(self.names) >= MAX_PREFIXES:
                return None
            number = len(self.names)
            self.names.append(head)  # before the dict: a reader finds a number, then its name
            self.numbers[head] = number
        return number << COUNTER_SHIFT | counter

    def spell(self, key: int) -> str:
        return f"{self.names[key >> COUNTER_SHIFT]}{key & MAX_COUNTER}"


def _empty() -> State:
    return array("q"), bytearray(), array("q"), array("q"), array("I"), {}, {}, array("I")


class QueueEntries:
    __slots__ = ("_state", "_prefixes", "_count", "_dead", "_moving", "_top", "_sized")
    SLACK = 64  # dead slots tolerated beyond the live ones before a rebuild

    def __init__(self, prefixes: Prefixes | None = None, sized: bool = False) -> None:
        self._sized = sized
        self._prefixes = Prefixes() if prefixes is None else prefixes
        self._state: State = _empty()
        self._count = 0  # live slots
        self._dead = 0
        self._moving = 0
        self._top = -1  # the highest key given to a keyed slot so far

    @classmethod
    def of(cls, prefixes: Prefixes, packed: Packed, first: int) -> QueueEntries:
        """A checkpoint's queue at positions first, first + 1, ... (decode has checked it: keyed
        keys increasing and known to `prefixes`, extras in order, ids distinct)."""
        keys, places, lengths, extras, sizes = packed
        entries = cls(prefixes, sized=sizes is not None)
        keys = array("q", keys)
        flags = bytearray(b"\x01") * len(keys)
        extra: dict[str, int] = {}
        extra_at: dict[int, str] = {}
        for slot, message_id in extras:
            flags[slot] = EXTRA
            keys[slot] = keys[slot - 1] if slot else -1  # the column stays sorted
            extra[message_id] = slot
            extra_at[slot] = message_id
        positions = array("q", range(first, first + len(keys)))
        entries._state = (keys, flags, positions, array("q", places), array("I", lengths), extra, extra_at,
                          array("I", sizes or ()))
        entries._count = len(keys)
        entries._top = keys[-1] if keys else -1  # the keys are sorted and an extra's repeats a keyed one's
        return entries

    def __len__(self) -> int:
        return self._count

    def __contains__(self, message_id: object) -> bool:
        return isinstance(message_id, str) and _slot(self._state, self._prefixes, message_id) is not None

    def __iter__(self) -> Iterator[str]:
        """Live ids in store order."""
        return (message_id for message_id, _ in self.items())

    def items(self) -> Iterator[tuple[str, Location]]:
        """(id, location) of the live messages in store order."""
        keys, flags, positions, places, lengths, _, extra_at, _ = self._state
        spell = self._prefixes.spell
        for slot in range(len(positions)):
            flag = flags[slot]
            if flag == KEYED:
                yield spell(keys[slot]), location(places[slot], lengths[slot])
            elif flag == EXTRA:
                message_id = extra_at.get(slot)
                if message_id is not None:
                    yield message_id, location(places[slot], lengths[slot])

    def sized_items(self) -> Iterator[tuple[str, Location, int]]:
        """(id, location, size) of the live messages in store order (size 0 unless sized)."""
        state = self._state
        places, lengths, sizes = state[3], state[4], state[7]
        sized = self._sized
        for slot, message_id in _live_ids(state, self._prefixes, range(len(state[2]))):
            yield message_id, location(places[slot], lengths[slot]), sizes[slot] if sized else 0

    def new_key(self, message_id: str) -> int | None:
        """The id's key if it is above every key here, so certainly not live here (the common case:
        no lookup is needed before `add`); None: look it up."""
        key = self._prefixes.key(message_id, add=True)
        return key if key is not None and key > self._top else None

    def add(self, message_id: str, position: int, loc: Location, key: int | None = None,
            size: int = 0) -> None:
        """Append a message that is not live here at `position`, above every position given before
        (`key`: what `new_key` gave for it; `size`: kept only by sized entries)."""
        keys, flags, positions, places, lengths, extra, extra_at, sizes = self._state
        slot = len(positions)
        if key is None:
            key = self._prefixes.key(message_id, add=True)
        if key is not None and key > self._top:
            self._top = key
            keys.append(key)
            flags.append(KEYED)
        else:
            keys.append(keys[-1] if keys else -1)
            flags.append(EXTRA)
            extra_at[slot] = message_id
            extra[message_id] = slot
        places.append(place(loc.file, loc.offset))
        lengths.append(loc.length)
        if self._sized:
            sizes.append(size)
        positions.append(position)  # after the other columns: it makes the slot visible to readers
        self._count += 1

    def remove(self, message_id: str) -> Location | None:
        """Drop a live message; where it was (None: it was not live)."""
        popped = self.pop(message_id)
        return None if popped is None else popped[0]

    def pop(self, message_id: str) -> tuple[Location, int] | None:
        """Drop a live message; where it was and its size (0 unless sized; None: it was not live)."""
        state = self._state
        slot = _slot(state, self._prefixes, message_id)
        if slot is None:
            return None
        _, flags, _, places, lengths, extra, extra_at, sizes = state
        was = flags[slot]
        flags[slot] = DEAD
        if was == EXTRA:
            del extra[message_id]
            del extra_at[slot]
        self._count -= 1
        self._dead += 1
        found = location(places[slot], lengths[slot]), sizes[slot] if self._sized else 0
        if self._dead > self._count + self.SLACK:
            self._rebuild()
        return found

    def relocate(self, message_id: str, loc: Location) -> Location | None:
        """Point a live message at a new record, keeping its place; the old location (None: not live)."""
        state = self._state
        slot = _slot(state, self._prefixes, message_id)
        if slot is None:
            return None
        places, lengths = state[3], state[4]
        old = location(places[slot], lengths[slot])
        self._moving += 1
        places[slot] = place(loc.file, loc.offset)
        lengths[slot] = loc.length
        self._moving += 1
        return old

    def size(self, message_id: str) -> int:
        """A live message's size (0 unless sized, or if it is not live)."""
        state = self._state
        slot = _slot(state, self._prefixes, message_id)
        return state[7][slot] if slot is not None and self._sized else 0

    def position(self, message_id: str) -> int | None:
        state = self._state
        slot = _slot(state, self._prefixes, message_id)
        return None if slot is None else state[2][slot]

    def locate(self, message_id: str) -> Location | None:
        """Where a live message is now (any thread); None if it is not live."""
        while True:
            moving = self._moving
            state = self._state
            slot = _slot(state, self._prefixes, message_id)
            if slot is None:
                return None
            found = location(state[3][slot], state[4][slot])
            if moving % 2 == 0 and self._moving == moving:
                return found

    def after(self, position: int | None, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` live (position, id) pairs after `position` (None: from the start)."""
        return [(at, message_id) for at, message_id, _ in self.after_located(position, limit)]

    def after_located(self, position: int | None, limit: int) -> list[tuple[int, str, Location]]:
        """`after` with where each message is: a page read goes to the records at once instead of
        spelling each id and bisecting for it again. Walked again if a relocation raced it (see
        `locate`)."""
        while True:
            moving = self._moving
            keys, flags, positions, places, lengths, _, extra_at, _ = self._state
            spell = self._prefixes.spell
            i = 0 if position is None else bisect_right(positions, position)
            found: list[tuple[int, str, Location]] = []
            end = len(positions)
            while i < end and len(found) < limit:
                flag = flags[i]
                if flag == KEYED:
                    found.append((positions[i], spell(keys[i]), location(places[i], lengths[i])))
                elif flag == EXTRA:
                    message_id = extra_at.get(i)
                    if message_id is not None:  # None: removed since the flag was read
                        found.append((positions[i], message_id, location(places[i], lengths[i])))
                i += 1
            if moving % 2 == 0 and self._moving == moving:
                return found

    def packed(self) -> Packed:
        """Copies of the live keys, places, lengths and extras in store order (for a checkpoint;
        writer thread). A few C calls however many messages: the writer holds up commits meanwhile."""
        keys, flags, _, places, lengths, _, extra_at, sizes = self._state
        extras = sorted(extra_at.items())
        if not self._dead:
            return Packed(array("q", keys), array("q", places), array("I", lengths), extras,
                          array("I", sizes) if self._sized else None)
        live = bytearray(compress(flags, flags))
        return Packed(array("q", compress(keys, flags)), array("q", compress(places, flags)),
                      array("I", compress(lengths, flags)),
                      list(zip(_extra_slots(live), (mid for _, mid in extras), strict=True)),
                      array("I", compress(sizes, flags)) if self._sized else None)

    def ids_below(self, file: int) -> list[str]:
        """The live ids whose record is in a data file before `file`, in store order (one pass over
        the places column; only those ids are spelled)."""
        state, limit = self._state, place(file, 0)
        below = [slot for slot, at in enumerate(state[3]) if at < limit]
        return [message_id for _, message_id in _live_ids(state, self._prefixes, below)]

    def below_first(self, file: int) -> bool:
        """Whether the live messages whose record is in a data file before `file` come first in
        store order, before every live message in a later file."""
        flags, places = self._state[1], self._state[3]
        limit = place(file, 0)
        placed = [slot for slot, at in enumerate(places) if at < limit]
        below = [slot for slot in placed if flags[slot] != DEAD]
        if not below:
            return True
        last = below[-1] + 1
        return last - flags.count(DEAD, 0, last) == len(below)

    def in_file(self, file: int) -> list[tuple[str, Location]]:
        """The live messages whose record is in data file `file`, in store order."""
        low, high = place(file, 0), place(file + 1, 0)
        return [(mid, loc) for mid, loc in self.items() if low <= place(loc.file, loc.offset) < high]

    def placed(self) -> Iterator[tuple[int, int]]:
        """(place, length) of each live message's record, in store order."""
        _, flags, _, places, lengths, _, _, _ = self._state
        return zip(compress(places, flags), compress(lengths, flags), strict=True)

    def _rebuild(self) -> None:
        keys, flags, positions, places, lengths, _, extra_at, sizes = self._state
        live = bytearray(compress(flags, flags))
        ids = [mid for _, mid in sorted(extra_at.items())]
        extra_at = dict(zip(_extra_slots(live), ids, strict=True))
        self._state = (array("q", compress(keys, flags)), live, array("q", compress(positions, flags)),
                       array("q", compress(places, flags)), array("I", compress(lengths, flags)),
                       {mid: slot for slot, mid in extra_at.items()}, extra_at,
                       array("I", compress(sizes, flags)))
        self._dead = 0


def _extra_slots(flags: bytearray) -> list[int]:
    """The slots flagged EXTRA, in order (bytearray.find: C speed, one call per extra)."""
    found: list[int] = []
    slot = flags.find(EXTRA)
    while slot >= 0:
        found.append(slot)
        slot = flags.find(EXTRA, slot + 1)
    return found


def _live_ids(state: State, prefixes: Prefixes, slots: Iterable[int]) -> Iterator[tuple[int, str]]:
    """(slot, id) of the live ones of `slots`, in order. `state` is one snapshot of the columns: a
    reader in another thread must not mix two (a rebuild replaces them all at once)."""
    keys, flags, _, _, _, _, extra_at, _ = state
    spell = prefixes.spell
    for slot in slots:
        flag = flags[slot]
        if flag == KEYED:
            yield slot, spell(keys[slot])
        elif flag == EXTRA:
            message_id = extra_at.get(slot)
            if message_id is not None:  # None: removed since the flag was read
                yield slot, message_id


def _slot(state: State, prefixes: Prefixes, message_id: str) -> int | None:
    """The slot of a live message in `state`; None if it is not live there."""
    keys, flags, positions, _, _, extra, _, _ = state
    slot = extra.get(message_id)
    if slot is not None:
        return slot if slot < len(positions) and flags[slot] == EXTRA else None
    key = prefixes.key(message_id)
    if key is None:
        return None
    slot = bisect_left(keys, key)
    if slot < len(positions) and keys[slot] == key and flags[slot] == KEYED:
        return slot
    return None
