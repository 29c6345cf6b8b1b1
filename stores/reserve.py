"""The reserve: preallocated space a new master gives back before it writes anything.

A master killed while the disk is full must still restart: taking over writes the epoch file
(a new inode, replaced atomically), the store's first record of the term (a SEAL or a segment
header) and, for LevelDB, a new log and manifest. `<data dir>/reserve` holds `store.reserve`
bytes, allocated while there is room; the master that has just taken the lock deletes it before
bumping the epoch, which frees that much for its own metadata, and the usage monitor
(stores/usage.py) allocates it again once the disk has room. Only a lock holder touches it.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from stores import fsio

log = logging.getLogger(__name__)

RESERVE_NAME = "reserve"
_CHUNK = 1024 * 1024


def reserve_path(data_dir: Path) -> Path:
    return Path(data_dir) / RESERVE_NAME


def release(data_dir: Path) -> int:
    """Delete the reserve (with the lock held, before the epoch is written); the bytes freed."""
    path = reserve_path(data_dir)
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    fsio.sync_directory(path.parent)
    log.info("released the %d-byte reserve in %s for this term's metadata", size, data_dir)
    return size


def present(data_dir: Path, size: int) -> bool:
    try:
        return reserve_path(data_dir).stat().st_size >= size
    except FileNotFoundError:
        return False


def restore(data_dir: Path, size: int) -> bool:
    """Allocate the reserve again if it is missing; False if the disk has no room for it now."""
    if size <= 0 or present(data_dir, size):
        return True
    path = reserve_path(data_dir)
    tmp = path.with_name(RESERVE_NAME + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _allocate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsio.sync_directory(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        return False
    log.info("allocated the %d-byte reserve %s", size, path)
    return True


def _allocate(fd: int, size: int) -> None:
    # Real blocks, not a sparse file: deleting a sparse file frees nothing.
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    zeros = bytes(_CHUNK)
    written = 0
    while written < size:
        written += os.write(fd, zeros[: min(_CHUNK, size - written)])
