"""The master's heartbeat: `<data dir>/heartbeat`, one fixed-size record rewritten in place.

Design §2 "Safe takeover". Taking the lock does not prove the previous master stopped, so every
keep-alive period the master rewrites this record (identity, epoch, an advancing counter) and a
successor waits until the record stops changing, unless the record says the master released
cleanly. Record layout (all integers big-endian), RECORD_SIZE bytes:

    0   4  magic b"BQHB"
    4   1  version (1)
    5   1  flags: bit 0 = released cleanly
    6   2  name length in bytes (<= 400)       8  2  host length in bytes (<= 255)
    10  4  pid                                 14 8  epoch
    22  8  counter (1 for the first beat)      30 8  wall time of this beat (float64)
    38  8  holder's start time (float64)       46 8  stale_after in s (float64, 0 = unknown)
    54  .  name bytes, then host bytes (UTF-8), zero padding
    1020 4 CRC-32 (zlib) of bytes 0..1019

`stale_after` is the writer's promise: once its record has not changed for that long, it has
stopped serving (its lock_timeout; docs/lock-protocol.md). Writers before lock_timeout existed
recorded their beat period in the same field, a smaller figure, so a successor still waits at
least its own lock_timeout.

A torn or garbled record (bad magic, version, lengths or CRC) reads as None: "unknown".
The wall time is informational only: hosts' clocks differ, so successors time staleness with
their own monotonic clock (stores.lock.takeover).
"""

from __future__ import annotations

import errno
import math
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from stores.lock.identity import Holder, LockLost, LockUnanswered

HEARTBEAT_NAME = "heartbeat"
RECORD_SIZE = 1024
MAGIC = b"BQHB"
VERSION = 1
_HEADER = struct.Struct(">4sBBHHIQQddd")  # 54 bytes
_CRC = struct.Struct(">I")
_NAME_BYTES = 400
_HOST_BYTES = 255
_RELEASED = 0x01
_MAX_STALE_AFTER = 3600.0


@dataclass(frozen=True)
class Heartbeat:
    name: str
    host: str
    pid: int
    started: float
    epoch: int
    counter: int
    time: float
    released: bool
    stale_after: float = 0.0  # silence after which the writer has stopped serving; 0 = unknown

    @property
    def holder(self) -> Holder:
        return Holder(self.name, self.host, self.pid, self.started, self.epoch)


def heartbeat_path(data_dir: Path) -> Path:
    return Path(data_dir) / HEARTBEAT_NAME


def _clip(text: str, limit: int) -> bytes:
    return text.encode()[:limit].decode(errors="ignore").encode()  # cut on a character boundary


def encode(beat: Heartbeat) -> bytes:
    name, host = _clip(beat.name, _NAME_BYTES), _clip(beat.host, _HOST_BYTES)
    flags = _RELEASED if beat.released else 0
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        flags,
        len(name),
        len(host),
        beat.pid,
        beat.epoch,
        beat.counter,
        beat.time,
        beat.started,
        beat.stale_after,
    )
    body = (header + name + host).ljust(RECORD_SIZE - _CRC.size, b"\0")
    return body + _CRC.pack(zlib.crc32(body))


def decode(record: bytes) -> Heartbeat | None:
    """Parse one record; None for anything torn, foreign or garbled."""
    if len(record) != RECORD_SIZE:
        return None
    body = record[: RECORD_SIZE - _CRC.size]
    if _CRC.unpack(record[RECORD_SIZE - _CRC.size :])[0] != zlib.crc32(body):
        return None
    magic, version, flags, name_len, host_len, pid, epoch, counter, wall, started, stale_after = (
        _HEADER.unpack_from(body)
    )
    if magic != MAGIC or version != VERSION or name_len > _NAME_BYTES or host_len > _HOST_BYTES:
        return None
    if not (math.isfinite(stale_after) and 0 <= stale_after <= _MAX_STALE_AFTER):
        return None
    start = _HEADER.size
    try:
        name = body[start : start + name_len].decode()
        host = body[start + name_len : start + name_len + host_len].decode()
    except UnicodeDecodeError:
        return None
    return Heartbeat(name, host, pid, started, epoch, counter, wall, bool(flags & _RELEASED), stale_after)


def read_raw(data_dir: Path) -> bytes | None:
    """The record's bytes as found (possibly torn), or None when there is no heartbeat file."""
    try:
        fd = os.open(heartbeat_path(data_dir), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return os.pread(fd, RECORD_SIZE + 1, 0)
    finally:
        os.close(fd)


def read_heartbeat(data_dir: Path) -> Heartbeat | None:
    """The current record, or None when absent, torn or garbled."""
    try:
        raw = read_raw(data_dir)
    except OSError:
        return None
    return decode(raw) if raw is not None else None


class HeartbeatWriter:
    """Rewrites the record in place (pwrite + fdatasync) on each `beat()`.

    Create and start beating only after `previous_master_gone` returned: the first beat
    overwrites the previous master's record, which is the evidence that function watches.
    Later beats first check that the record is still ours, so a deposed master never overwrites
    its successor's heartbeat (and learns it was deposed). Errors split as the lock's do:
    LockLost when the record shows another master, LockUnanswered when the I/O failed.
    """

    def __init__(self, data_dir: Path, holder: Holder, stale_after: float = 0.0) -> None:
        self.path = heartbeat_path(data_dir)
        self.holder = holder
        # Recorded so that a successor configured with a shorter lock_timeout still waits long enough.
        self.stale_after = min(max(0.0, stale_after), _MAX_STALE_AFTER)
        self.counter = 0
        self._fd = -1
        self._last: bytes | None = None
        self._attempted: bytes | None = None  # a record whose write failed: it may be on disk, or part of it

    def beat(self) -> None:
        self._write(released=False)

    def mark_released(self) -> bool:
        """Record a clean stop (store closed, nothing bound) and close; False if no longer ours."""
        try:
            self._write(released=True)
        except (LockLost, LockUnanswered, OSError):
            return False
        finally:
            self.close()
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self, released: bool) -> None:
        first = self._fd < 0
        if first:
            if self._last is not None or self._attempted is not None:
                raise LockLost("the heartbeat writer is closed")
            self._fd = self._open()
        else:
            self._check_still_ours()
        h = self.holder
        self.counter += 1
        beat = Heartbeat(
            h.name, h.host, h.pid, h.started, h.epoch, self.counter, time.time(), released, self.stale_after
        )
        record = encode(beat)
        self._attempted = record
        try:
            # One write of one record: a reader that sees it half-written fails the CRC.
            written = os.pwrite(self._fd, record, 0)
            if first:
                os.ftruncate(self._fd, RECORD_SIZE)  # whatever was there may have been longer
            os.fdatasync(self._fd)
        except OSError as exc:
            raise LockUnanswered(f"writing the heartbeat failed: {exc}") from exc
        if written != len(record):
            raise LockUnanswered(f"writing the heartbeat wrote {written} of {len(record)} bytes")
        self._last, self._attempted = record, None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LockUnanswered(f"opening the heartbeat {self.path} failed: {exc}") from exc

    def _check_still_ours(self) -> None:
        try:
            same_file = os.path.samestat(os.stat(self.path), os.fstat(self._fd))
            found = os.pread(self._fd, RECORD_SIZE, 0)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ESTALE):
                raise LockLost(f"heartbeat file {self.path} was deleted") from None
            raise LockUnanswered(f"reading the heartbeat failed: {exc}") from exc
        if not same_file:
            raise LockLost(f"heartbeat file {self.path} was replaced by another file")
        if found == self._last or self._ours_after_failure(found):
            return
        other = decode(found)
        who = other.holder.describe() if other is not None else "an unreadable record"
        raise LockLost(f"the heartbeat now shows {who}: another master is beating")

    def _ours_after_failure(self, found: bytes) -> bool:
        """After a failed write the file holds that record, part of it, or the one before."""
        if self._attempted is None:
            return False
        if found == self._attempted:
            return True
        beat = decode(found)
        return beat is None or beat.holder == self.holder
