"""The fencing epoch: a durable counter every new master increments before it opens the store.

Design §2 "Fencing epoch" and docs/lock-protocol.md ("The fencing rule"). `<data dir>/epoch`
holds one decimal integer and a newline, replaced atomically. A master remembers the epoch it
wrote; `LockFence.check()` runs after every group commit's fsync and before any receipt, so a
master that a newer one has fenced off (or whose lock file vanished) acknowledges nothing more.
"""

from __future__ import annotations

import os
from pathlib import Path

from stores.base import Fence, StoreCorrupted
from stores.fsio import write_atomically
from stores.lock.directory import DirectoryLock, stat_lock_path
from stores.lock.identity import LockLost, LockUnanswered

EPOCH_NAME = "epoch"
_MAX_EPOCH_BYTES = 32  # 2**63 has 19 digits; anything longer is not an epoch file of ours


def epoch_path(data_dir: Path) -> Path:
    return Path(data_dir) / EPOCH_NAME


def _parse(data: bytes) -> int | None:
    if not data.endswith(b"\n"):
        return None
    digits = data[:-1]
    if not digits.isdigit() or len(digits) > 19:  # bytes.isdigit: ASCII digits only
        return None
    return int(digits)


def _read(path: str | Path) -> bytes:
    # os-level and uncached: the file is replaced by rename, so a kept descriptor would read the
    # old inode and hide the change; one open + read + close is a few microseconds.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, _MAX_EPOCH_BYTES + 1)
    finally:
        os.close(fd)


def read_epoch(data_dir: Path) -> int:
    """The current epoch; 0 when no master has ever bumped it."""
    path = epoch_path(data_dir)
    try:
        data = _read(path)
    except FileNotFoundError:
        return 0
    value = _parse(data)
    if value is None:
        raise StoreCorrupted(str(path), f"not a decimal epoch: {data[:_MAX_EPOCH_BYTES]!r}")
    return value


def bump_epoch(data_dir: Path) -> int:
    """Increment the epoch durably and return the new value. Call only with the lock held."""
    value = read_epoch(data_dir) + 1
    write_atomically(epoch_path(data_dir), b"%d\n" % value)  # fsync file and directory
    return value


class LockFence(Fence):
    """Cheap proof, for each group commit, that we are still the master of epoch `epoch`.

    `check()` is one stat of the lock path plus one small read of the epoch file. It catches a
    lock file deleted or replaced (a successor may then hold a lock on the new file) and an epoch
    bumped by a successor. It deliberately does not re-read the lock file's content: the
    keep-alive (`DirectoryLock.verify`) does that every period. An I/O error is no answer
    (LockUnanswered): the group commit then acknowledges nothing, but the store stays open.
    """

    def __init__(self, lock: DirectoryLock, epoch: int) -> None:
        identity = lock.identity
        if not lock.held or identity is None:
            raise LockLost("a fence needs the lock to be held")
        self.epoch = epoch
        self._lock = lock
        self._identity = identity  # of this tenure: a later re-acquisition gets a new fence
        self._lock_path = os.fspath(lock.path)
        self._epoch_path = os.fspath(epoch_path(lock.path.parent))

    def check(self) -> None:
        """LockLost when we are provably not the master; LockUnanswered on an I/O error."""
        if self._lock.identity != self._identity:
            raise LockLost("the lock was released")
        st = stat_lock_path(self._lock_path)
        if (st.st_dev, st.st_ino) != self._identity:
            raise LockLost(f"lock file {self._lock_path} was replaced by another file")
        try:
            current = _parse(_read(self._epoch_path))
        except FileNotFoundError:
            current = None  # a master wrote it before opening the store: gone means tampered with
        except OSError as exc:
            raise LockUnanswered(f"cannot read the epoch file {self._epoch_path}: {exc}") from exc
        if current != self.epoch:
            raise LockLost(f"the epoch is now {current}, ours is {self.epoch}: a newer master took over")
