"""`batonmq status`: who is master of a data directory, read without disturbing anything.

The lock file keeps the last holder's identity after that holder stops or dies, so the identity
alone does not say whether there is a master. We also ask the kernel whether a write lock is held
(F_OFD_GETLK, which tests without taking: design.md section 2), on a read-only descriptor that we
never lock. Opening and closing that descriptor cannot drop anyone's lock: OFD locks belong to
their own descriptor, and a classic lock only to its own process.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stores.lock import LOCK_NAME, Holder, read_holder


class _Flock(ctypes.Structure):
    # struct flock (fcntl(2)), as stores.lock lays it out.
    _fields_ = [
        ("l_type", ctypes.c_short),
        ("l_whence", ctypes.c_short),
        ("l_start", ctypes.c_int64),
        ("l_len", ctypes.c_int64),
        ("l_pid", ctypes.c_int),
    ]


@dataclass(frozen=True, slots=True)
class Status:
    data_dir: Path
    locked: bool | None  # None: no lock file, or the kernel would not say
    holder: Holder | None

    def fields(self) -> dict[str, object]:
        holder = None
        if self.holder is not None:
            h = self.holder
            holder = {"name": h.name, "host": h.host, "pid": h.pid, "epoch": h.epoch,
                      "since": _iso(h.started), "started": h.started}
        # `holder` is the identity in the lock file: the master's when `master`, else the last one's.
        return {"command": "status", "data_dir": str(self.data_dir), "master": bool(self.locked),
                "lock_file": self.locked is not None, "holder": holder}

    def text(self) -> str:
        if self.locked:
            if self.holder is None:
                return "master: lock held; holder has not written its identity yet"
            return f"master: {self.holder.describe()}"
        line = "no master (lock free)"
        if self.holder is not None:
            line += f"; last holder: {self.holder.describe()}"
        return line


def read_status(data_dir: Path) -> Status:
    """Raises NotADirectoryError/FileNotFoundError if `data_dir` is not a directory."""
    if not data_dir.is_dir():
        raise NotADirectoryError(f"not a directory: {data_dir}")
    return Status(data_dir, lock_held(data_dir / LOCK_NAME), read_holder(data_dir))


def lock_held(path: Path) -> bool | None:
    """Whether some descriptor holds a lock on `path`; None if there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    try:
        probe = bytes(_Flock(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        command = getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK)
        try:
            answer = fcntl.fcntl(fd, command, probe)
        except OSError:
            answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)  # kernels without OFD locks
        return _Flock.from_buffer_copy(answer).l_type != fcntl.F_UNLCK
    finally:
        os.close(fd)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
