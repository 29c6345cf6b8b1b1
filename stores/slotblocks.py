"""Runs of a QueueEntries' slots (stores/entries.py): the tail it appends to, and frozen blocks.

A queue's slots are cut into parts of consecutive slots. New slots go to the *tail*, whose
columns hold absolute numbers in wide arrays (8 bytes a key, a position, a file and an offset).
When the tail is full it is frozen into a *block*: each column is kept relative to a base (its
first key, its first position, its lowest file number) in the narrowest unsigned array that holds
the block's span. A block of a queue whose messages arrive together spans a few thousand keys and
positions and one or two files, so a slot costs 1 (flag) + 2 (key) + 2 (position) + 1 (file) + 4
(offset) + 2 (length) bytes instead of 29: a ten-million-message backlog's index fits in about
120 MB instead of 290.

Keys and positions of a block never change. Its flags (a removal) and its file, offset and length
columns (a relocation) do, and a checkpoint encodes a block's columns on another thread while the
writer goes on: `own` copies those columns before the first change after a checkpoint took them
(`gen` says whether it has), so a checkpoint holds no copy of its own, only references.
"""

from __future__ import annotations

from array import array
from itertools import compress, repeat
from operator import add, and_, lshift, or_, rshift, sub

from stores.reads import Location

FILE_SHIFT = 40
MAX_OFFSET = (1 << FILE_SHIFT) - 1
_CODES = (("B", 1 << 8), ("H", 1 << 16), ("I", 1 << 32), ("Q", 1 << 64))


def narrow(values: array[int] | list[int], base: int, top: int) -> array[int]:
    """`values` minus `base`, in the narrowest unsigned array that holds `top - base`."""
    span = top - base
    code = next(c for c, limit in _CODES if span < limit)
    return array(code, map(sub, values, repeat(base))) if base else array(code, values)


class Part:
    """Consecutive slots of one queue, `start` the first's slot number. Column i of slot s is
    base + column[s - start]: the tail's bases are 0 and its columns wide, a block's narrowed."""

    __slots__ = ("start", "flags", "key0", "keys", "pos0", "positions", "file0", "files", "offsets",
                 "lengths", "sizes", "live", "gen")

    def __init__(self, start: int) -> None:
        self.start = start
        self.flags = bytearray()
        self.key0 = self.pos0 = self.file0 = 0
        self.keys: array[int] = array("q")
        self.positions: array[int] = array("q")
        self.files: array[int] = array("q")
        self.offsets: array[int] = array("q")
        self.lengths: array[int] = array("I")
        self.sizes: array[int] = array("I")
        self.live = 0  # slots not DEAD
        self.gen = -1  # the checkpoint generation its changeable columns are private to

    def __len__(self) -> int:
        return len(self.positions)

    def key(self, i: int) -> int:
        return self.key0 + self.keys[i]

    def position(self, i: int) -> int:
        return self.pos0 + self.positions[i]

    def location(self, i: int) -> Location:
        return Location(self.file0 + self.files[i], self.offsets[i], self.lengths[i])

    def place(self, i: int) -> int:
        return (self.file0 + self.files[i]) << FILE_SHIFT | self.offsets[i]

    def own(self, gen: int) -> None:
        """Before changing a block's flags or locations: copy them if a checkpoint holds them."""
        if self.gen != gen:
            self.flags = bytearray(self.flags)
            self.files, self.offsets, self.lengths = (array(c.typecode, c) for c in
                                                      (self.files, self.offsets, self.lengths))
            self.gen = gen

    def set_location(self, i: int, loc: Location) -> None:
        """Point slot i at `loc`, widening a block's columns that cannot hold it (the caller owns
        the part and has readers retry: a widening replaces a base and its column in two steps)."""
        file = loc.file - self.file0
        try:
            self.files[i] = file
        except OverflowError:
            files = array("q", map(add, self.files, repeat(self.file0)))
            files[i] = loc.file
            low = min(files)
            self.files, self.file0 = narrow(files, low, max(files)), low
        for name, value in (("offsets", loc.offset), ("lengths", loc.length)):
            column = getattr(self, name)
            try:
                column[i] = value
            except OverflowError:
                wide = array("Q", column)
                wide[i] = value
                setattr(self, name, wide)

    def live_columns(self) -> tuple[array[int], array[int], array[int], array[int], array[int], array[int]]:
        """Absolute keys, positions, files, offsets, lengths and sizes of the live slots."""
        flags = self.flags
        return (array("q", map(add, compress(self.keys, flags), repeat(self.key0))),
                array("q", map(add, compress(self.positions, flags), repeat(self.pos0))),
                array("q", map(add, compress(self.files, flags), repeat(self.file0))),
                array("q", compress(self.offsets, flags)), array("I", compress(self.lengths, flags)),
                array("I", compress(self.sizes, flags)))


def tail(start: int) -> Part:
    return Part(start)


def freeze(run: Part, start: int, lo: int, hi: int, flags: bytearray, gen: int) -> Part:
    """A block of slots lo..hi of the wide `run` (absolute columns), numbered from `start`, with
    `flags` (the run's own when the whole tail is frozen: readers of it see later removals)."""
    block = Part(start)
    block.flags = flags
    keys, positions, files = run.keys[lo:hi], run.positions[lo:hi], run.files[lo:hi]
    block.key0, block.pos0, block.file0 = keys[0], positions[0], min(files)
    block.keys = narrow(keys, block.key0, keys[-1])  # keys never decrease, positions increase
    block.positions = narrow(positions, block.pos0, positions[-1])
    block.files = narrow(files, block.file0, max(files))
    offsets, lengths = run.offsets[lo:hi], run.lengths[lo:hi]
    block.offsets = narrow(offsets, 0, max(offsets))
    block.lengths = narrow(lengths, 0, max(lengths))
    sizes = run.sizes[lo:hi]
    block.sizes = narrow(sizes, 0, max(sizes)) if sizes else array("B")
    block.live = len(flags) - flags.count(0)
    block.gen = gen
    return block


def places(files: array[int], offsets: array[int]) -> array[int]:
    """file << FILE_SHIFT | offset of absolute columns (a checkpoint's places column)."""
    return array("q", map(or_, map(lshift, files, repeat(FILE_SHIFT)), offsets))


def split_places(places_: array[int]) -> tuple[array[int], array[int]]:
    return (array("q", map(rshift, places_, repeat(FILE_SHIFT))),
            array("q", map(and_, places_, repeat(MAX_OFFSET))))
