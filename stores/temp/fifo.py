"""A first-in first-out queue of record locations, packed: 12 bytes a spilled message.

A queue that spills keeps, per message, only where its record is. A `Location` object (a named
tuple of three ints) costs some 180 bytes with its deque slot, which for small messages is most of
what spilling saves; here a location is one 64-bit word (segment << 32 | offset) and one 32-bit
length, in arrays of CHUNK entries. Each entry has a sequence number (0, 1, 2, ... in append order),
by which the caller keeps the few it needs more about (messages whose write is under way).
"""

from __future__ import annotations

from array import array
from collections import deque

from stores.reads import Location

CHUNK = 4096
_OFFSET_BITS = 32
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1


class LocationFifo:
    __slots__ = ("_places", "_lengths", "_head", "first", "_count")

    def __init__(self) -> None:
        self._places: deque[array[int]] = deque()  # segment << 32 | offset
        self._lengths: deque[array[int]] = deque()
        self._head = 0  # index of the oldest entry in the first chunk
        self.first = 0  # sequence number of the oldest entry
        self._count = 0

    def __len__(self) -> int:
        return self._count

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
        """The oldest `n` entries (fewer if there are fewer), as (sequence number, location)."""
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

    def peek(self, start: int, n: int) -> list[tuple[int, Location]]:
        """Entries `start` .. `start + n` from the oldest, left in place (a browse)."""
        out: list[tuple[int, Location]] = []
        # Every chunk but the newest holds CHUNK entries, the first counted from index 0.
        position = self._head + max(0, start)
        end = self._head + min(self._count, max(0, start) + n)
        seq = self.first + max(0, start)
        while position < end:
            chunk, i = divmod(position, CHUNK)
            place = self._places[chunk][i]
            out.append((seq, Location(place >> _OFFSET_BITS, place & _OFFSET_MASK, self._lengths[chunk][i])))
            position += 1
            seq += 1
        return out

    def clear(self) -> list[tuple[int, Location]]:
        """Every entry, oldest first; the queue is then empty."""
        return self.popleft(self._count)
