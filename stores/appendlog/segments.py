"""Segment files of the append log: names, listing, creation, and the active segment.

The one place that knows the path rules (`log-<N>.seg`, N decimal, increasing, never reused).
Appends go through `stores.fsio.open_append` so tests can drop unsynced bytes. A segment is
created with O_EXCL: a file we create is ours alone, so a deposed master that still runs can
never share (or reuse the number of) a segment with the new master.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from stores import fsio
from stores.appendlog import records
from stores.base import StoreClosed
from stores.framing import frame_size

log = logging.getLogger(__name__)

_NAME = re.compile(r"log-([0-9]{1,18})\.seg")


def segment_name(number: int) -> str:
    return f"log-{number}.seg"


def where(number: int, offset: int) -> str:
    """How errors and warnings name a position: `log-2.seg@123`."""
    return f"{segment_name(number)}@{offset}"


def list_segments(directory: Path) -> list[int]:
    """Segment numbers present in `directory`, ascending; other files are ignored."""
    numbers = []
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _NAME.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                numbers.append(int(match.group(1)))
    return sorted(numbers)


def read_segment(directory: Path, number: int) -> bytes:
    return (directory / segment_name(number)).read_bytes()


def read_first_frame(directory: Path, number: int) -> records.Frame | records.BadFrame:
    """Only the segment header: recovery needs every header (the seals) before reading data."""
    with open(directory / segment_name(number), "rb") as f:
        head = f.read(records.HEADER_SIZE)
        size = frame_size(head)
        if size is None or size > records.HEADER_SIZE + records.MAX_PAYLOAD:
            return records.decode_frame(head, 0)
        return records.decode_frame(head + f.read(size - records.HEADER_SIZE), 0)


_INSIDE = frozenset({records.RecordType.SNAP_MESSAGES, records.RecordType.SNAP_SUBSCRIPTIONS,
                     records.RecordType.SNAP_PRODUCERS, records.RecordType.SNAP_END})


def begins_inside_snapshot(directory: Path, number: int) -> bool:
    """Whether the record after the segment's header belongs to a snapshot begun in an earlier
    segment (a compaction rotated into this one): replay cannot start here (FORMAT.md,
    "Compaction"). Reads the header and the next record's type byte."""
    with open(directory / segment_name(number), "rb") as f:
        size = frame_size(f.read(records.HEADER_SIZE))
        if size is None:
            return False
        f.seek(size)
        head = f.read(records.HEADER_SIZE)
    return len(head) == records.HEADER_SIZE and head[-1] in _INSIDE


class Segment:
    """The active (appendable) segment: an `AppendFile` plus its number."""

    def __init__(self, number: int, file: fsio.AppendFile) -> None:
        self.number = number
        self.file = file
        self.damaged: str | None = None  # set when a failed write could not be undone
        self.last = (0, 0)  # (offset, CRC) of the last record appended: what a checkpoint ends after

    @property
    def size(self) -> int:
        return self.file.size

    def append(self, frame: bytes, last: int = 0) -> None:
        """Append one or more whole frames, the last starting `last` bytes into `frame`; on failure
        cut the file back so no partial frame stays."""
        start = self.file.size
        try:
            self.file.append(frame)
        except BaseException:
            self.cut(start)
            raise
        self.last = (start + last, int.from_bytes(frame[last:last + 4], "little"))

    def cut(self, size: int, last: tuple[int, int] | None = None) -> None:
        """`_cut`, and the last record is again the one before the cut (`last`)."""
        self._cut(size)
        if last is not None:
            self.last = last

    def _cut(self, size: int) -> None:
        """Undo appends past `size`; if even that fails, mark the segment damaged (no more writes)."""
        try:
            self.file.truncate(size)
        except OSError as exc:
            self.damaged = f"could not cut {segment_name(self.number)} back to {size} bytes: {exc}"
            log.error("%s", self.damaged)

    def sync(self) -> None:
        self.file.sync()

    def close(self) -> None:
        self.file.close()


def create_segment(directory: Path, number: int, epoch: int, sealed: dict[int, int]) -> Segment:
    """Create `log-<number>.seg` holding only its SEGMENT header, durably (file and directory synced).

    Raises StoreClosed if the name is taken (another process is writing this store). On any
    other failure the file is removed again, so a header sealing our predecessor never survives
    a segment we did not start using; if even that fails, the OSError of the unlink propagates.
    """
    path = directory / segment_name(number)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
    except FileExistsError:
        raise StoreClosed(
            f"{path} already exists: another process is writing this store (a deposed master?)"
        ) from None
    file = None
    try:
        file = fsio.open_append(path)
        header = records.encode_segment_header(number, epoch, sealed)
        frame = records.encode_frame(records.RecordType.SEGMENT, header)
        file.append(frame)
        file.sync()
        fsio.sync_directory(directory)
    except BaseException:
        if file is not None:
            file.close()
        path.unlink(missing_ok=True)
        fsio.sync_directory(directory)
        raise
    segment = Segment(number, file)
    segment.last = (0, int.from_bytes(frame[:4], "little"))
    return segment


def delete_segments(directory: Path, numbers: list[int]) -> None:
    """Newest first: a crash part-way leaves the oldest, a run that replays from its start as it
    always did. Oldest first could leave, as the first segment, one that begins inside a snapshot
    (its chunks with no SNAP_BEGIN before them): a log that no longer opens."""
    for number in sorted(numbers, reverse=True):
        (directory / segment_name(number)).unlink(missing_ok=True)
    if numbers:
        fsio.sync_directory(directory)


def truncate_segment(directory: Path, number: int, size: int) -> None:
    file = fsio.open_append(directory / segment_name(number))
    try:
        file.truncate(size)
        file.sync()
    finally:
        file.close()


def read_at(directory: Path, number: int, offset: int, size: int) -> bytes:
    """Up to `size` bytes of segment `number` at `offset` (fewer at its end)."""
    fd = os.open(directory / segment_name(number), os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def sync_segment(directory: Path, number: int) -> None:
    fd = os.open(directory / segment_name(number), os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
