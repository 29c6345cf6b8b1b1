"""One queue's live messages in a store's index: store order, positions and locations, compact.

Both the journal and the append log keep their index in these. Ten million live messages are
most of a broker's memory with a paged backlog, so a message has no object of its own: it is one
slot in parallel columns in store order (key, flag, position, file, offset, record length), and
the slots are cut into blocks of BLOCK (stores/slotblocks.py): the newest in a tail of wide
absolute numbers (37 bytes a slot), the rest frozen, each column relative to the block's base in
the narrowest array that holds it (about 11 bytes a slot). A *sized* QueueEntries (the append
log's) has one more column, the message's own estimated size: its records hold many messages, so
a record's length says nothing of what one message would occupy in a compaction snapshot.

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

A removed message's flag becomes DEAD (a tombstone); a block whose slots are all dead goes at
once (a drained backlog's front), and when tombstones are most of the slots everything is
rebuilt into new blocks, so a removal costs O(1) amortized and a page walks no more dead slots
than live ones. A key is found by bisecting the blocks' first keys, then the block's own column
(both in C); a position likewise.

One writer thread changes a QueueEntries; readers in other threads call `after`, `position`,
`locate` and `__contains__` without a lock, which is safe under CPython's GIL as stores/order.py
explains: the writer appends a slot's other columns before its position (a reader finds slots
through the positions, so it never sees half of one), tombstones with one store, and swaps a
frozen tail, a dropped block or rebuilt blocks in as one state tuple (a reader that holds the old
one sees the queue as it was when it started, a moment its read can be ordered at; a frozen
block shares the tail's flags, so removals stay visible to it). A relocation writes columns of a
slot in place (or widens a block's); `_moving` counts those writes (odd while one is under way),
so a reader that raced one reads again rather than pair a new place with an old length.

A checkpoint takes `frozen()`: references to the blocks and a copy of the tail only. A block
changed after that copies its changeable columns first (slotblocks.Part.own), so the encoder, on
another thread, reads them as they were.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from itertools import compress, repeat
from operator import add
from typing import Any, NamedTuple

from stores import slotblocks
from stores.reads import Location
from stores.slotblocks import Part

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

# (frozen blocks, tail, the blocks' first slot numbers, first keys and first positions, extra id ->
# slot number, slot number -> extra id): swapped whole by a freeze, a dropped block or a rebuild.
State = tuple[tuple[Part, ...], Part, "array[int]", "array[int]", "array[int]", dict[str, int],
              dict[int, str]]


Column = Any  # an array, or a Chunked of `frozen` (made block by block while it is encoded)


class Packed(NamedTuple):
    """A queue's live messages as a checkpoint holds them (FORMAT.md section 3), in store order:
    keys (an extra's is any number), places, lengths, (index, id) of the extras, in order, and
    the sizes of sized entries (else None)."""

    keys: Column
    places: Column
    lengths: Column
    extras: list[tuple[int, str]]
    sizes: Column | None = None


# A chunk of a queue's columns as a version 3 checkpoint holds them (stores/columns.py): keys,
# places, lengths and sizes (None: not sized) of at most a block's consecutive slots.
Chunk = tuple["array[int]", "array[int]", "array[int]", "array[int] | None"]


class Streamed(NamedTuple):
    """A queue of a checkpoint that is being read (stores/columns.py read_queue_blocks): its count
    and extras, then its columns as checked chunks, read from the file as they are taken (once)."""

    messages: int
    extras: list[tuple[int, str]]
    chunks: Iterator[Chunk]
    sized: bool


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
    return (), slotblocks.tail(0), array("q"), array("q"), array("q"), {}, {}


class Chunked:
    """A checkpoint column made a block at a time while it is encoded (QueueEntries.frozen), as
    little-endian numbers of `typecode`'s size: the blocks it reads are the index's own, kept
    unchanged for it (slotblocks.Part.own)."""

    __slots__ = ("typecode", "count", "parts", "_make")

    def __init__(self, typecode: str, count: int, parts: int,
                 make: Callable[[], Iterator[bytes | bytearray]]) -> None:
        self.typecode = typecode
        self.count = count
        self.parts = parts  # chunks `make` gives: one per block, and the tail
        self._make = make

    def chunks(self) -> Iterator[bytes | bytearray]:
        return self._make()

    def __iter__(self) -> Iterator[int]:
        for chunk in self._make():
            numbers = array(self.typecode)
            numbers.frombytes(chunk)
            if slotblocks.BIG_ENDIAN:
                numbers.byteswap()
            yield from numbers

    def __len__(self) -> int:
        return self.count

    def __eq__(self, other: object) -> bool:  # as the array it encodes as (a decoded checkpoint's)
        if not isinstance(other, array | Chunked):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


class QueueEntries:
    __slots__ = ("_state", "_prefixes", "_count", "_dead", "_moving", "_top", "_sized", "_gen")
    SLACK = 64  # dead slots tolerated beyond the live ones before a rebuild
    BLOCK = 1024  # slots of a frozen block (stores/slotblocks.py)

    def __init__(self, prefixes: Prefixes | None = None, sized: bool = False) -> None:
        self._sized = sized
        self._prefixes = Prefixes() if prefixes is None else prefixes
        self._state: State = _empty()
        self._count = 0  # live slots
        self._dead = 0
        self._moving = 0
        self._top = -1  # the highest key given to a keyed slot so far
        self._gen = 0  # bumped by `frozen`: blocks changed after it copy their columns first

    @classmethod
    def of(cls, prefixes: Prefixes, packed: Packed | Streamed, first: int) -> QueueEntries:
        """A checkpoint's queue at positions first, first + 1, ... (decode has checked it: keyed
        keys increasing and known to `prefixes`, extras in order, ids distinct). A Streamed one is
        built a chunk at a time as it is read."""
        if isinstance(packed, Streamed):
            entries = cls(prefixes, sized=packed.sized)
            count, extras, chunks = packed.messages, packed.extras, packed.chunks
        else:
            entries = cls(prefixes, sized=packed.sizes is not None)
            count, extras, chunks = len(packed.keys), packed.extras, _chunks_of(packed, cls.BLOCK)
        extra_at = dict(extras)
        entries._state = entries._blocked(_runs(chunks, [slot for slot, _ in extras], first), extra_at)
        entries._count = count
        top = entries._state[1].keys[-1:] or [b.key0 + b.keys[-1] for b in entries._state[0][-1:]]
        entries._top = top[0] if top else -1  # sorted, and an extra's repeats a keyed one's
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
        state = self._state
        for part in _parts(state):
            for i, message_id in _live_ids(part, state, self._prefixes, range(len(part))):
                yield message_id, part.location(i)

    def sized_items(self) -> Iterator[tuple[str, Location, int]]:
        """(id, location, size) of the live messages in store order (size 0 unless sized)."""
        state, sized = self._state, self._sized
        for part in _parts(state):
            for i, message_id in _live_ids(part, state, self._prefixes, range(len(part))):
                yield message_id, part.location(i), part.sizes[i] if sized else 0

    def new_key(self, message_id: str) -> int | None:
        """The id's key if it is above every key here, so certainly not live here (the common case:
        no lookup is needed before `add`); None: look it up."""
        key = self._prefixes.key(message_id, add=True)
        return key if key is not None and key > self._top else None

    def add(self, message_id: str, position: int, loc: Location, key: int | None = None,
            size: int = 0) -> None:
        """Append a message that is not live here at `position`, above every position given before
        (`key`: what `new_key` gave for it; `size`: kept only by sized entries)."""
        state = self._state
        tail = state[1]
        if len(tail.positions) >= self.BLOCK:
            state = self._freeze()
            tail = state[1]
        if key is None:
            key = self._prefixes.key(message_id, add=True)
        if key is not None and key > self._top:
            self._top = key
            tail.keys.append(key)
            tail.flags.append(KEYED)
        else:
            slot = tail.start + len(tail.positions)
            tail.keys.append(self._top)  # the column stays sorted
            tail.flags.append(EXTRA)
            state[6][slot] = message_id
            state[5][message_id] = slot
        tail.files.append(loc.file)
        tail.offsets.append(loc.offset)
        tail.lengths.append(loc.length)
        if self._sized:
            tail.sizes.append(size)
        tail.positions.append(position)  # after the other columns: it makes the slot visible to readers
        tail.live += 1
        self._count += 1

    def remove(self, message_id: str) -> Location | None:
        """Drop a live message; where it was (None: it was not live)."""
        popped = self.pop(message_id)
        return None if popped is None else popped[0]

    def pop(self, message_id: str) -> tuple[Location, int] | None:
        """Drop a live message; where it was and its size (0 unless sized; None: it was not live)."""
        state = self._state
        found = _slot(state, self._prefixes, message_id)
        if found is None:
            return None
        part, i = found
        if part is not state[1]:
            part.own(self._gen)
        was = part.flags[i]
        part.flags[i] = DEAD
        part.live -= 1
        if was == EXTRA:
            del state[5][message_id]
            del state[6][part.start + i]
        self._count -= 1
        self._dead += 1
        popped = part.location(i), part.sizes[i] if self._sized else 0
        if not part.live and part is not state[1]:
            self._drop(part)
        elif self._dead > self._count + self.SLACK:
            self._rebuild()
        return popped

    def relocate(self, message_id: str, loc: Location) -> Location | None:
        """Point a live message at a new record, keeping its place; the old location (None: not live)."""
        state = self._state
        found = _slot(state, self._prefixes, message_id)
        if found is None:
            return None
        part, i = found
        old = part.location(i)
        if part is not state[1]:
            part.own(self._gen)
        self._moving += 1
        part.set_location(i, loc)
        self._moving += 1
        return old

    def size(self, message_id: str) -> int:
        """A live message's size (0 unless sized, or if it is not live)."""
        found = _slot(self._state, self._prefixes, message_id)
        return found[0].sizes[found[1]] if found is not None and self._sized else 0

    def position(self, message_id: str) -> int | None:
        found = _slot(self._state, self._prefixes, message_id)
        return None if found is None else found[0].position(found[1])

    def locate(self, message_id: str) -> Location | None:
        """Where a live message is now (any thread); None if it is not live."""
        while True:
            moving = self._moving
            found = _slot(self._state, self._prefixes, message_id)
            if found is None:
                return None
            loc = found[0].location(found[1])
            if moving % 2 == 0 and self._moving == moving:
                return loc

    def after(self, position: int | None, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` live (position, id) pairs after `position` (None: from the start)."""
        return [(at, message_id) for at, message_id, _ in self.after_located(position, limit)]

    def after_located(self, position: int | None, limit: int) -> list[tuple[int, str, Location]]:
        """`after` with where each message is: a page read goes to the records at once instead of
        spelling each id and bisecting for it again. Walked again if a relocation raced it (see
        `locate`)."""
        while True:
            moving = self._moving
            state = self._state
            found = _walk(state, self._prefixes, position, limit)
            if moving % 2 == 0 and self._moving == moving:
                return found

    def packed(self) -> Packed:
        """Copies of the live keys, places, lengths and extras in store order."""
        frozen = self.frozen()
        return Packed(array("q", frozen.keys), array("q", frozen.places), array("I", frozen.lengths),
                      frozen.extras, None if frozen.sizes is None else array("I", frozen.sizes))

    def frozen(self) -> Packed:
        """The live messages as a checkpoint holds them, as of now (writer thread), without a copy
        of the blocks: their columns are made a block at a time when they are read, and a block
        changed meanwhile copies its own first (slotblocks.Part.own). Only the tail is copied."""
        self._gen += 1
        blocks, tail, *_ = state = self._state
        copy = slotblocks.tail(tail.start)
        n = len(tail.positions)
        copy.flags, copy.keys, copy.files = tail.flags[:n], tail.keys[:n], tail.files[:n]
        copy.offsets, copy.lengths, copy.sizes = tail.offsets[:n], tail.lengths[:n], tail.sizes[:n]
        views = [(b.flags, b.key0, b.keys, b.file0, b.files, b.offsets, b.lengths, b.sizes) for b in blocks]
        views.append((copy.flags, 0, copy.keys, 0, copy.files, copy.offsets, copy.lengths, copy.sizes))
        extras = _packed_extras(state, [*blocks, copy])

        def column(pick: Callable[[View], bytes | bytearray], code: str) -> Chunked:
            return Chunked(code, self._count, len(views), lambda: (pick(view) for view in views))

        return Packed(column(_view_keys, "q"), column(_view_places, "q"), column(_view_lengths, "I"),
                      extras, column(_view_sizes, "I") if self._sized else None)

    def ids_below(self, file: int) -> list[str]:
        """The live ids whose record is in a data file before `file`, in store order (only those
        ids are spelled)."""
        state, found = self._state, []
        for part in _parts(state):
            below = file - part.file0
            slots = [i for i, at in enumerate(part.files) if at < below]
            found += [message_id for _, message_id in _live_ids(part, state, self._prefixes, slots)]
        return found

    def below_first(self, file: int) -> bool:
        """Whether the live messages whose record is in a data file before `file` come first in
        store order, before every live message in a later file."""
        later = False
        for part in _parts(self._state):
            below = file - part.file0
            for at in compress(part.files, part.flags):
                if at >= below:
                    later = True
                elif later:
                    return False
        return True

    def in_file(self, file: int) -> list[tuple[str, Location]]:
        """The live messages whose record is in data file `file`, in store order."""
        return [(mid, loc) for mid, loc in self.items() if loc.file == file]

    def placed(self) -> Iterator[tuple[int, int]]:
        """(place, length) of each live message's record, in store order."""
        for part in _parts(self._state):
            flags = part.flags
            files = map(add, compress(part.files, flags), repeat(part.file0))
            yield from zip(map(place, files, compress(part.offsets, flags)), compress(part.lengths, flags),
                           strict=True)

    # -- blocks -------------------------------------------------------------------------------------

    def _freeze(self) -> State:
        """The full tail becomes a block (its flags shared: a reader of the old tail sees later
        removals) and a new tail begins: swapped in as one state."""
        blocks, tail, starts, keys, positions, extra, extra_at = self._state
        new = slotblocks.tail(tail.start + len(tail.positions))
        if tail.live:
            block = slotblocks.freeze(tail, tail.start, 0, len(tail.positions), tail.flags, self._gen)
            blocks = (*blocks, block)
            starts, keys, positions = (_appended(c, v) for c, v in ((starts, block.start), (keys, block.key0),
                                                                     (positions, block.pos0)))
        else:
            self._dead -= len(tail.positions)
        self._state = (blocks, new, starts, keys, positions, extra, extra_at)
        return self._state

    def _drop(self, block: Part) -> None:
        """A block with no live slot left goes (its extras went with their removals)."""
        blocks, tail, starts, keys, positions, extra, extra_at = self._state
        at = blocks.index(block)
        self._state = (blocks[:at] + blocks[at + 1:], tail, _without(starts, at), _without(keys, at),
                       _without(positions, at), extra, extra_at)
        self._dead -= len(block)

    def _rebuild(self) -> None:
        """Every live slot again, in new blocks numbered from 0, a block's worth at a time."""
        extra_at: dict[int, str] = {}
        self._state = self._blocked(_live_runs(self._state, extra_at), extra_at)
        self._dead = 0

    def _blocked(self, runs: Iterable[Part], extra_at: dict[int, str]) -> State:
        """A state of the slots of `runs` (wide, at most BLOCK slots each, numbered on from 0,
        their extras in `extra_at` once all are read): full blocks, and the rest as the tail."""
        blocks: list[Part] = []
        pending = slotblocks.tail(0)
        for run in runs:
            if not pending.positions and len(run.positions) == self.BLOCK:  # a checkpoint's full chunk
                start = blocks[-1].start + len(blocks[-1]) if blocks else 0
                blocks.append(slotblocks.freeze(run, start, 0, self.BLOCK, run.flags, self._gen))
                continue
            _extend(pending, run)
            if len(pending.positions) >= self.BLOCK:
                start = blocks[-1].start + len(blocks[-1]) if blocks else 0
                flags = pending.flags[:self.BLOCK]
                blocks.append(slotblocks.freeze(pending, start, 0, self.BLOCK, flags, self._gen))
                pending = _rest(pending, self.BLOCK)
        pending.start = blocks[-1].start + len(blocks[-1]) if blocks else 0
        pending.live = len(pending.flags) - pending.flags.count(DEAD)
        return (tuple(blocks), pending, array("q", (b.start for b in blocks)),
                array("q", (b.key0 for b in blocks)), array("q", (b.pos0 for b in blocks)),
                {mid: s for s, mid in extra_at.items()}, extra_at)


def _chunks_of(packed: Packed, block: int) -> Iterator[Chunk]:
    """Whole columns a block's slots at a time (a run at a time: a ten-million-message queue
    never has a second whole copy)."""
    keys, places, lengths, _, sizes = packed
    for lo in range(0, len(keys), block):
        hi = lo + block
        yield (array("q", keys[lo:hi]), array("q", places[lo:hi]), array("I", lengths[lo:hi]),
               None if sizes is None else array("I", sizes[lo:hi]))


def _runs(chunks: Iterable[Chunk], extras: list[int], first: int) -> Iterator[Part]:
    """A checkpoint's chunks as wide runs at positions from `first`, flagged by the slots of the
    extras (in order)."""
    previous, lo = -1, 0
    for keys, places, lengths, sizes in chunks:
        hi = lo + len(keys)
        if hi == lo:
            continue
        run = slotblocks.tail(lo)
        run.flags = bytearray(b"\x01") * (hi - lo)
        for slot in extras[bisect_left(extras, lo):bisect_left(extras, hi)]:
            run.flags[slot - lo] = EXTRA
        run.keys = keys
        for i in _extra_slots(run.flags):  # an extra repeats the key before it: the column stays sorted
            run.keys[i] = run.keys[i - 1] if i else previous
        previous = run.keys[-1]
        run.positions = array("q", range(first + lo, first + hi))
        run.files, run.offsets = slotblocks.split_places(places)
        run.lengths = lengths
        run.sizes = sizes if sizes is not None else array("I")
        lo = hi
        yield run


def _live_runs(state: State, extra_at: dict[int, str]) -> Iterator[Part]:
    """The live slots of `state`'s parts as wide runs numbered from 0; their extras into `extra_at`."""
    slot = 0
    for part in _parts(state):
        if not part.live:
            continue
        run = slotblocks.tail(slot)
        run.keys, run.positions, run.files, run.offsets, run.lengths, run.sizes = part.live_columns()
        run.flags = bytearray(compress(part.flags, part.flags))
        for i, packed in zip(_extra_slots(part.flags), _extra_slots(run.flags), strict=True):
            extra_at[slot + packed] = state[6][part.start + i]
        slot += len(run.flags)
        yield run


# (flags, key base, keys, file base, files, offsets, lengths, sizes) of one part, as `frozen` took it.
View = tuple[bytearray, int, "array[int]", int, "array[int]", "array[int]", "array[int]", "array[int]"]


def _view_keys(view: View) -> bytes | bytearray:
    return slotblocks.key_bytes(view[0], view[1], view[2])


def _view_places(view: View) -> bytes | bytearray:
    return slotblocks.place_bytes(view[0], view[3], view[4], view[5])


def _view_lengths(view: View) -> bytes | bytearray:
    return slotblocks.length_bytes(view[0], view[6])


def _view_sizes(view: View) -> bytes | bytearray:
    return slotblocks.length_bytes(view[0], view[7])


def _packed_extras(state: State, parts: list[Part]) -> list[tuple[int, str]]:
    """(index among the live slots, id) of each extra, in order."""
    extra_at = state[6]
    if not extra_at:
        return []
    found: list[tuple[int, str]] = []
    before = 0  # live slots of the parts before
    for part in parts:
        flags, start = part.flags, part.start
        dead, last = 0, 0
        for i in _extra_slots(flags):
            dead += flags.count(DEAD, last, i)
            last = i
            message_id = extra_at.get(start + i)
            if message_id is not None:
                found.append((before + i - dead, message_id))
        before += len(flags) - flags.count(DEAD)
    return found


def _appended(column: array[int], value: int) -> array[int]:
    new = array("q", column)
    new.append(value)
    return new


def _without(column: array[int], at: int) -> array[int]:
    return column[:at] + column[at + 1:]


def _extend(run: Part, more: Part) -> None:
    run.flags += more.flags
    for name in ("keys", "positions", "files", "offsets", "lengths", "sizes"):
        getattr(run, name).extend(getattr(more, name))


def _rest(run: Part, n: int) -> Part:
    rest = slotblocks.tail(0)
    rest.flags = run.flags[n:]
    for name in ("keys", "positions", "files", "offsets", "lengths", "sizes"):
        setattr(rest, name, getattr(run, name)[n:])
    return rest


def _parts(state: State) -> Iterator[Part]:
    yield from state[0]
    yield state[1]


def _extra_slots(flags: bytearray) -> list[int]:
    """The slots flagged EXTRA, in order (bytearray.find: C speed, one call per extra)."""
    found: list[int] = []
    slot = flags.find(EXTRA)
    while slot >= 0:
        found.append(slot)
        slot = flags.find(EXTRA, slot + 1)
    return found


def _live_ids(part: Part, state: State, prefixes: Prefixes,
              slots: Iterable[int]) -> Iterator[tuple[int, str]]:
    """(index, id) of the live ones of `slots` of `part`, in order. `state` is the one snapshot
    `part` was found in: a reader in another thread must not mix two."""
    flags, keys, key0, extra_at, start = part.flags, part.keys, part.key0, state[6], part.start
    spell = prefixes.spell
    for i in slots:
        flag = flags[i]
        if flag == KEYED:
            yield i, spell(key0 + keys[i])
        elif flag == EXTRA:
            message_id = extra_at.get(start + i)
            if message_id is not None:  # None: removed since the flag was read
                yield i, message_id


def _walk(state: State, prefixes: Prefixes, position: int | None,
          limit: int) -> list[tuple[int, str, Location]]:
    """Up to `limit` live (position, id, location) after `position`, in order (after_located)."""
    blocks, tail, _, _, first_positions, _, extra_at = state
    spell = prefixes.spell
    found: list[tuple[int, str, Location]] = []
    b = 0 if position is None else max(0, bisect_right(first_positions, position) - 1)
    for part in (*blocks[b:], tail):
        flags, keys, key0, positions, pos0 = part.flags, part.keys, part.key0, part.positions, part.pos0
        files, file0, offsets, lengths, start = part.files, part.file0, part.offsets, part.lengths, part.start
        end = len(positions)
        i = 0 if position is None else bisect_right(positions, position - pos0)
        while i < end and len(found) < limit:
            flag = flags[i]
            if flag == KEYED:
                found.append((pos0 + positions[i], spell(key0 + keys[i]),
                              Location(file0 + files[i], offsets[i], lengths[i])))
            elif flag == EXTRA:
                message_id = extra_at.get(start + i)
                if message_id is not None:  # None: removed since the flag was read
                    found.append((pos0 + positions[i], message_id,
                                  Location(file0 + files[i], offsets[i], lengths[i])))
            i += 1
        if len(found) >= limit:
            break
    return found


def _slot(state: State, prefixes: Prefixes, message_id: str) -> tuple[Part, int] | None:
    """The part and index of a live message in `state`; None if it is not live there."""
    blocks, tail, starts, first_keys, _, extra, _ = state
    slot = extra.get(message_id)
    if slot is not None:
        if slot >= tail.start:
            part = tail
        elif blocks:
            part = blocks[max(0, bisect_right(starts, slot) - 1)]
        else:
            return None
        i = slot - part.start
        return (part, i) if 0 <= i < len(part.positions) and part.flags[i] == EXTRA else None
    key = prefixes.key(message_id)
    if key is None:
        return None
    # The keyed slot of `key` is the first slot with a key >= it (an extra repeats the key before):
    # in the last block that begins below it, or else first in the next part.
    j = bisect_left(first_keys, key)
    if j:
        part = blocks[j - 1]
        i = bisect_left(part.keys, key - part.key0)
        if i == len(part.positions):  # then the next block's first slot; the tail may begin with extras below
            part = blocks[j] if j < len(blocks) else tail
            i = 0 if part is not tail else bisect_left(tail.keys, key)
    else:
        part = blocks[0] if blocks else tail
        i = bisect_left(part.keys, key - part.key0)
    if i < len(part.positions) and part.key0 + part.keys[i] == key and part.flags[i] == KEYED:
        return part, i
    return None
