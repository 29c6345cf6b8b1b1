"""The file-system seam of the file-based stores.

Stores append through `AppendFile`, never through `open()` directly, so tests can substitute
`stores.faultfs` and drop every byte written since the last sync before reopening (the crash
model of LevelDB's fault-injection tests).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

_DSYNC: int | None = getattr(os, "RWF_DSYNC", None)  # Linux 4.7+
_NO_DSYNC = (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS)


def _dsync_unsupported() -> None:
    global _DSYNC
    _DSYNC = None


class AppendFile:
    """An append-only file with explicit sync; `size` is the logical end."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(self._fd).st_size
        self.synced = self.size

    def append(self, data: bytes) -> int:
        """Write `data` at the end; return the offset it starts at."""
        offset = self.size
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(self._fd, view[written:], offset + written)
        self.size += len(data)
        return offset

    def append_synced(self, data: bytes) -> int:
        """`append` then `sync`, as one write with RWF_DSYNC where the file is synced up to its end:
        one system call and one release of the GIL fewer per group commit, the same durability
        (the write returns once its bytes and the size that reaches them are on disk, as fdatasync
        would). Otherwise, or in a subclass that replaces `append` or `sync` (the fault layer), the
        two calls themselves."""
        cls = type(self)
        if (_DSYNC is None or self.synced != self.size or cls.append is not AppendFile.append
                or cls.sync is not AppendFile.sync):
            offset = self.append(data)
            self.sync()
            return offset
        offset = self.size
        view = memoryview(data)
        written = 0
        while written < len(view):  # a short write: the rest, synced the same way
            try:
                written += os.pwritev(self._fd, [view[written:]], offset + written, _DSYNC)
            except OSError as exc:
                if written or exc.errno not in _NO_DSYNC:
                    raise
                _dsync_unsupported()  # a file system without per-write sync: the two calls from now on
                return self.append_synced(data)
        self.size = self.synced = offset + len(data)
        return offset

    def truncate(self, size: int) -> None:
        """Cut the file back to `size` (undo a failed append, or a torn tail)."""
        os.ftruncate(self._fd, size)
        self.size = size
        self.synced = min(self.synced, size)

    def sync(self) -> None:
        if self.synced != self.size:
            os.fdatasync(self._fd)
            self.synced = self.size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def sync_directory(directory: Path) -> None:
    """fsync a directory so that a created, renamed or deleted entry survives a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new content, never a mix."""
    with _replacing(path) as fd:
        _write_all(fd, data)


def write_streamed_atomically(path: Path, head_size: int, parts: Iterable[bytes | memoryview],
                              head: Callable[[], bytes],
                              replace: Callable[[Path, Path], None] | None = None) -> None:
    """As write_atomically, for content made a part at a time (never all in memory at once): the
    first `head_size` bytes are written last, as `head()` gives them once every part is written
    (a checksum of the parts, say). `replace(tmp, path)` renames the synced temp file over `path`
    (default os.replace); a caller's may decide not to, and remove it instead."""
    with _replacing(path, replace or os.replace) as fd:
        _write_all(fd, bytes(head_size))
        for part in parts:
            _write_all(fd, part)
        first = head()
        if len(first) != head_size:
            raise ValueError(f"a head of {len(first)} bytes for {head_size} reserved")
        os.lseek(fd, 0, os.SEEK_SET)
        _write_all(fd, first)


@contextlib.contextmanager
def _replacing(path: Path, replace: Callable[[Path, Path], None] = os.replace) -> Iterator[int]:
    """A descriptor of `path`'s temp file; once the block ends, synced and renamed over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        yield fd
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)  # a half-written temp file would hold the space we lack
        raise
    os.close(fd)
    replace(tmp, path)
    sync_directory(path.parent)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    written = 0
    while written < len(view):  # a short write (a nearly full disk) is not the whole part
        written += os.write(fd, view[written:])


def directory_usage(directory: Path) -> tuple[int, int]:
    """(files, bytes) directly in `directory`, for a store's stats()."""
    files = size = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                files += 1
                size += entry.stat(follow_symlinks=False).st_size
    return files, size


# Tests swap this factory for a fault-injecting one; stores must call it instead of AppendFile().
open_append = AppendFile
