"""A first-in first-out queue of record locations, packed: 12 bytes a spilled message.

A queue that spills keeps, per message, only where its record is. A `Location` object (a named
tuple of three ints) costs some 180 bytes with its deque slot, which for small messages is most of
what spilling saves; here a location is one 64-bit word (segment << 32 | offset) and one 32-bit
length, in arrays of CHUNK entries. Each entry has a sequence number (0, 1, 2, ... in append order),
by which the caller keeps the few it needs more about (messages whose write is under way).

An entry can also be taken out from the middle (an operator removes or moves one message): it
stays in its array, its sequence number in a sorted list of dead ones, and every read (length,
popleft, peek) skips it, so counts and positions are those of the live entries. The list is short
but for a large removal by id, and it empties as the reader passes the dead entries.
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from collections.abc import Iterable

from stores.reads import Location

CHUNK = 4096
_OFFSET_BITS = 32
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1


class LocationFifo:
    __slots__ = ("_places", "_lengths", "_head", "first", "_count", "_dead")

    def __init__(self) -> None:
        self._places: deque[array[int]] = deque()  # segment << 32 | offset
        self._lengths: deque[array[int]] = deque()
        self._head = 0  # index of the oldest entry in the first chunk
        self.first = 0  # sequence number of the oldest entry, dead or not
        self._count = 0  # entries in the arrays, dead ones too
        self._dead: list[int] = []  # sequence numbers of entries taken out (all >= first), sorted

    def __len__(self) -> int:
        """Live entries."""
        return self._count - len(self._dead)

    @property
    def end(self) -> int:
        """The sequence number the next entry gets: every entry now has a smaller one."""
        return self.first + self._count

    def append(self, location: Location) -> int:
        """Add the newest entry; its sequence number."""
        if location.offset > _OFFSET_MASK or location.length > _OFFSET_MASK:
            raise ValueError(f"location {location} does not pack")
        if not self._places or len(self._places[-1]) == CHUNK:
            self._places.append(array("Q"))
            self._lengths.append(array("I"))
        self._places[-1].append(location.file << _OFFSET_BITS | location.offset)
        self._lengths[-1].append(location.length)
        self._count += 1
        return self.first + self._count - 1

    def popleft(self, n: int) -> list[tuple[int, Location]]:
        """The oldest `n` live entries (fewer if there are fewer), as (sequence number, location)."""
        out: list[tuple[int, Location]] = []
        while len(out) < n and self._count:
            out += self._live(self._take(n - len(out)))
        return out

    def peek(self, start: int, n: int) -> list[tuple[int, Location]]:
        """Live entries `start` .. `start + n` from the oldest, left in place (a browse)."""
        out: list[tuple[int, Location]] = []
        position = self._position(max(0, start))
        while len(out) < n and position < self._count:
            entries = self._peek(position, n - len(out))
            position += len(entries)
            out += self._live(entries, drop=False)
        return out

    def index(self, seq: int) -> int:
        """How many live entries are older than sequence number `seq`: where it (or the first live
        one after it) is, from the oldest, for `peek`."""
        return max(0, min(seq - self.first, self._count)) - bisect.bisect_left(self._dead, seq)

    def remove(self, seqs: Iterable[int]) -> list[tuple[int, Location]]:
        """Take these entries out wherever they are; those that were live, oldest first."""
        dead, end = self._dead, self.end
        wanted = sorted({seq for seq in seqs if self.first <= seq < end})
        out = [entry for seq in wanted if not self._is_dead(seq) for entry in self._peek(seq - self.first, 1)]
        self._dead = sorted(dead + [seq for seq, _ in out])  # two sorted runs: merged in one pass
        return out

    def clear(self) -> list[tuple[int, Location]]:
        """Every live entry, oldest first; the queue is then empty."""
        return self._live(self._take(self._count))

    def _take(self, n: int) -> list[tuple[int, Location]]:
        """The oldest `n` entries, dead ones too."""
        out: list[tuple[int, Location]] = []
        while n > 0 and self._count:
            places, lengths = self._places[0], self._lengths[0]
            start = self._head
            end = min(len(places), start + n)
            seq = self.first
            for i in range(start, end):
                place = places[i]
                out.append((seq, Location(place >> _OFFSET_BITS, place & _OFFSET_MASK, lengths[i])))
                seq += 1
            taken = end - start
            n -= taken
            self.first += taken
            self._count -= taken
            self._head = end
            if end == len(places):  # used up (the newest chunk only once the queue is empty)
                self._places.popleft()
                self._lengths.popleft()
                self._head = 0
        return out

    def _peek(self, position: int, n: int) -> list[tuple[int, Location]]:
        """Entries `position` .. `position + n` in the arrays, dead ones too."""
        out: list[tuple[int, Location]] = []
        # Every chunk but the newest holds CHUNK entries, the first counted from index 0.
        index = self._head + position
        end = self._head + min(self._count, position + n)
        seq = self.first + position
        while index < end:
            chunk, i = divmod(index, CHUNK)
            place = self._places[chunk][i]
            out.append((seq, Location(place >> _OFFSET_BITS, place & _OFFSET_MASK, self._lengths[chunk][i])))
            index += 1
            seq += 1
        return out

    def _live(self, entries: list[tuple[int, Location]], drop: bool = True) -> list[tuple[int, Location]]:
        """`entries` (consecutive) without the dead ones; `drop`: they are taken, forget those dead."""
        dead = self._dead
        if not dead or not entries:
            return entries
        low = bisect.bisect_left(dead, entries[0][0])
        high = bisect.bisect_left(dead, entries[-1][0] + 1)
        if low == high:
            return entries
        gone = set(dead[low:high])
        if drop:
            del dead[low:high]
        return [entry for entry in entries if entry[0] not in gone]

    def _is_dead(self, seq: int) -> bool:
        i = bisect.bisect_left(self._dead, seq)
        return i < len(self._dead) and self._dead[i] == seq

    def _position(self, live: int) -> int:
        """The first place in the arrays with `live` live entries before it (a bisection: the count
        of live entries before a place only grows with it)."""
        low, high = live, live + len(self._dead)
        while low < high:
            middle = (low + high) // 2
            if middle - bisect.bisect_left(self._dead, self.first + middle) >= live:
                high = middle
            else:
                low = middle + 1
        return low
