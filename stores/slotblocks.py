"""Runs of a QueueEntries' slots (stores/entries.py): the tail it appends to, and frozen blocks.

A queue's slots are cut into parts of consecutive slots. New slots go to the *tail*, whose
columns hold absolute numbers in wide arrays (8 bytes a key, a position, a file and an offset).
When the tail is full it is frozen into a *block*: each column is kept relative to a base (its
first key, its first position, its lowest file number) in the narrowest unsigned array that holds
the block's span. A block of a queue whose messages arrive together spans a few thousand keys and
positions and one or two files, so a slot costs 1 (flag) + 2 (key) + 2 (position) + 1 (file) + 4
(offset) + 2 (length) bytes instead of 29: a ten-million-message backlog's index fits in about
120 MB instead of 290.

Keys and positions of a block never change, so the blocks whose positions are consecutive (a
backlog of one queue: every one of them) share one positions column, `_steps`: a slot costs 2
bytes less. Its flags (a removal) and its file, offset and length
columns (a relocation) do, and a checkpoint encodes a block's columns on another thread while the
writer goes on: `own` copies those columns before the first change after a checkpoint took them
(`gen` says whether it has), so a checkpoint holds no copy of its own, only references.
"""

from __future__ import annotations

import functools
import sys
from array import array
from itertools import compress, repeat
from operator import add, lshift, or_, sub

from stores.reads import Location

FILE_SHIFT = 40
MAX_OFFSET = (1 << FILE_SHIFT) - 1
BIG_ENDIAN = sys.byteorder == "big"
_CODES = (("B", 1 << 8), ("H", 1 << 16), ("I", 1 << 32), ("Q", 1 << 64))


def narrow(values: array[int], base: int, top: int | None = None) -> array[int]:
    """`values` minus `base` (none below it), in the narrowest unsigned array that holds them
    (`top`: the highest, if known); in C, as the checkpoint's lanes below (a block is frozen
    every 1,024 adds, and a checkpoint's load makes ten thousand of them for ten million)."""
    if base < 0 or (top is not None and top >= 1 << 63) or values.typecode == "Q":
        # Lanes cannot borrow, nor hold a number that large: number by number.
        span = (max(values) if top is None else top) - base
        code = next(c for c, limit in _CODES if span < limit)
        return array(code, map(sub, values, repeat(base)))
    wide = lanes(values, 8)
    if base:
        less = int.from_bytes(wide, "little") - base * _ones(8, len(values))
        wide = bytearray(less.to_bytes(len(wide), "little"))
    if top is None:  # the narrowest width whose higher bytes are zero in every lane
        used = next((k + 1 for k in range(7, 0, -1) if wide[k::8].count(0) != len(values)), 1)
        code = next(c for c, _ in _CODES if array(c).itemsize >= used)
    else:
        code = next(c for c, limit in _CODES if top - base < limit)
    width = array(code).itemsize
    low = bytearray(width * len(values))
    for k in range(width):
        low[k::width] = wide[k::8]
    return _numbers(code, low)


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
            self.files, self.file0 = narrow(files, low), low
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
    consecutive = positions[-1] - block.pos0 == len(positions) - 1  # they increase
    block.positions = _steps(len(positions)) if consecutive else narrow(positions, block.pos0, positions[-1])
    block.files = narrow(files, block.file0)
    offsets, lengths = run.offsets[lo:hi], run.lengths[lo:hi]
    block.offsets = narrow(offsets, 0)
    block.lengths = narrow(lengths, 0)
    sizes = run.sizes[lo:hi]
    block.sizes = narrow(sizes, 0) if sizes else array("B")
    block.live = len(flags) - flags.count(0)
    block.gen = gen
    return block


@functools.lru_cache(maxsize=8)
def _steps(n: int) -> array[int]:
    """0, 1, ..., n - 1: the relative positions of a block of consecutive ones (shared: never
    changed, see the module's docstring)."""
    return array("H" if n <= 1 << 16 else "I", range(n))


def places(files: array[int], offsets: array[int]) -> array[int]:
    """file << FILE_SHIFT | offset of absolute columns (a checkpoint's places column)."""
    return array("q", map(or_, map(lshift, files, repeat(FILE_SHIFT)), offsets))


def split_places(places_: array[int]) -> tuple[array[int], array[int]]:
    """A checkpoint's places column as files and offsets (the high three bytes of each and the
    low five: places are never negative, decode has checked)."""
    data = lanes(places_, 8)
    files, offsets = bytearray(len(data)), bytearray(len(data))
    for k in range(3):
        files[k::8] = data[5 + k::8]
    for k in range(5):
        offsets[k::8] = data[k::8]
    return _numbers("q", files), _numbers("q", offsets)


def _numbers(code: str, data: bytearray) -> array[int]:
    out = array(code)
    out.frombytes(data)
    if BIG_ENDIAN:
        out.byteswap()
    return out


# A checkpoint's columns from blocks (QueueEntries.frozen), in C rather than number by number:
# a million-message queue is checkpointed every few seconds, and a Python add per number took
# 0.6 us a message, most of the GIL beside a busy writer at ten million. A block's relative
# numbers are spread into little-endian lanes with strided byte copies, and its base is added to
# every lane at once as one big-integer addition (no lane overflows into the next: each sum fits
# its lane); the dead slots' lanes are then cut out a run at a time.

_LIVE = bytes([0, 1, 1]).ljust(256, b"\x01")  # flag -> 1 if the slot is live (DEAD is 0)


def lanes(column: array[int], width: int, at: int = 0) -> bytearray:
    """The numbers of `column` as little-endian lanes of `width` bytes, each moved up `at` bytes
    (only the low bytes that fit: the caller knows the numbers are that small)."""
    if BIG_ENDIAN:
        column = array(column.typecode, column)
        column.byteswap()
    data, size = column.tobytes(), column.itemsize  # bytes: their strided slices are copied fast
    if size == width and not at:
        return bytearray(data)
    out = bytearray(width * len(column))
    for k in range(min(size, width - at)):
        out[at + k::width] = data[k::size]
    return out


def _ones(width: int, count: int) -> int:
    """1 in each of `count` lanes of `width` bytes: times a base, the base in every lane."""
    return int.from_bytes(b"\x01".ljust(width, b"\x00") * count, "little")


def _sum(width: int, count: int, base: int, *parts: bytearray) -> bytes:
    """The lanes of `parts` (disjoint bytes, so their sum is their union) plus `base` in each."""
    total = sum(int.from_bytes(part, "little") for part in parts) + base * _ones(width, count)
    return total.to_bytes(width * count, "little")


def _live(data: bytes | bytearray, width: int, flags: bytearray) -> bytes | bytearray:
    """The lanes of the live slots only."""
    live = flags.translate(_LIVE)
    if live.find(0) < 0:
        return data
    runs, start = [], live.find(1)
    while start >= 0:
        end = live.find(0, start)
        end = len(live) if end < 0 else end
        runs.append(data[start * width:end * width])
        start = live.find(1, end)
    return b"".join(runs)


def key_bytes(flags: bytearray, key0: int, keys: array[int]) -> bytes | bytearray:
    """The live keys as 8-byte little-endian numbers (a block whose first slot is an extra of an
    empty queue has base -1: number by number, as lanes cannot borrow)."""
    if key0 < 0:
        return _little(array("q", map(add, compress(keys, flags), repeat(key0))))
    return _live(_sum(8, len(keys), key0, lanes(keys, 8)), 8, flags)


def place_bytes(flags: bytearray, file0: int, files: array[int], offsets: array[int]) -> bytes | bytearray:
    """The live places, file << 40 | offset, as 8-byte little-endian numbers (offsets below 2**40,
    files below 2**23: five bytes and three)."""
    both = _sum(8, len(files), file0 << FILE_SHIFT, lanes(offsets, 8), lanes(files, 8, FILE_SHIFT // 8))
    return _live(both, 8, flags)


def length_bytes(flags: bytearray, lengths: array[int]) -> bytes | bytearray:
    """Live lengths (or sizes) as 4-byte little-endian numbers."""
    return _live(lanes(lengths, 4), 4, flags)


def _little(column: array[int]) -> bytes:
    if BIG_ENDIAN:
        column.byteswap()
    return column.tobytes()
