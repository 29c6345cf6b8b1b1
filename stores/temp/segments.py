"""Where temporary store records go, and when a segment file may go: pure bookkeeping, no I/O.

Records are appended to the current segment until the next one would take it past `segment_size`
(a record larger than that gets a segment of its own); then a new segment is opened. Each segment
counts its live records: a record dies when its message was read back into memory or dropped.
A segment with no live record left is deleted, the current one too (the next record opens a new
one), so a queue that was drained leaves no file behind.
"""

from __future__ import annotations

from stores.reads import Location  # (file: the segment's number, offset, length)


class Segments:
    __slots__ = ("segment_size", "current", "end", "live", "sizes", "bytes", "_next")

    def __init__(self, segment_size: int) -> None:
        self.segment_size = segment_size
        self.current: int | None = None  # the segment records are appended to
        self.end = 0  # its length so far
        self.live: dict[int, int] = {}  # segment -> records not yet dead
        self.sizes: dict[int, int] = {}  # segment -> bytes
        self.bytes = 0  # of every segment not deleted
        self._next = 1

    def place(self, length: int) -> tuple[Location, bool]:
        """Where a record of `length` bytes goes, and whether that starts a new segment file."""
        new = self.current is None or (self.end > 0 and self.end + length > self.segment_size)
        if new:
            self.current, self.end = self._next, 0
            self._next += 1
            self.live[self.current] = 0
            self.sizes[self.current] = 0
        segment = self.current
        assert segment is not None
        location = Location(segment, self.end, length)
        self.end += length
        self.live[segment] += 1
        self.sizes[segment] += length
        self.bytes += length
        return location, new

    def release(self, locations: list[Location]) -> list[int]:
        """These records are dead; the segments that now hold no live record (to delete)."""
        emptied = []
        for location in locations:
            segment = location.file
            left = self.live[segment] - 1
            self.live[segment] = left
            if left == 0:
                emptied.append(segment)
        for segment in emptied:
            del self.live[segment]
            self.bytes -= self.sizes.pop(segment)
            if segment == self.current:
                self.current, self.end = None, 0
        return emptied

    def __len__(self) -> int:
        return len(self.live)
