"""A fault-injecting file layer for the file-based stores (the crash model of LevelDB's
fault-injection tests: everything written since the last sync is lost).

`FaultFS.install(monkeypatch)` replaces `stores.fsio.open_append` (and the three helpers that write
outside an AppendFile) so every file a store appends to is a tracked `FaultFile`. Then:

- `crash_store(store)` simulates power loss: it freezes the layer (later writes and syncs are
  dropped, as if the machine were already off), lets the store release its resources, and
  truncates every tracked file back to the size it had at its last sync;
- `fail_appends(errno, count)` makes the next `count` appends (or all until `clear_faults()`)
  raise OSError, ENOSPC by default, after writing part of the data, as a disk that fills up
  mid-write does; `fail_syncs` does the same for syncs (EIO).

Only writes through `stores.fsio` are seen: a store that opens files itself, or imports
`open_append` by name (`from stores.fsio import open_append`), escapes the layer; `files`
then stays empty and the tests say so.
"""

from __future__ import annotations

import errno as errnos
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from stores import fsio
from stores.base import Store


@dataclass(slots=True)
class Append:
    path: Path
    offset: int
    length: int


class FaultFile(fsio.AppendFile):
    def __init__(self, path: Path, fs: FaultFS) -> None:
        super().__init__(path)
        self.fs = fs
        fs.files.append(self)
        # What is on disk when a path is first opened counts as durable (it predates the test's
        # writes); a file first created after the crash point therefore starts at 0.
        fs.durable.setdefault(self.path, self.size)

    def append(self, data: bytes) -> int:
        if self.fs.frozen:
            return self._pretend(data)
        if self.fs.append_error is not None:
            # A full disk typically accepts part of a write before failing.
            offset = self.size
            os.pwrite(self._fd, bytes(data[: len(data) // 2]), offset)
            self.fs.failed_appends += 1
            raise self.fs.fault(self.fs.append_error, self.path)
        offset = super().append(data)
        self.fs.appends.append(Append(self.path, offset, len(data)))
        return offset

    def _pretend(self, data: bytes) -> int:
        # After the crash point nothing reaches the disk; keep the store's bookkeeping consistent.
        offset = self.size
        self.size += len(data)
        return offset

    def sync(self) -> None:
        if self.fs.frozen:
            return
        if self.fs.sync_error is not None and self.synced != self.size:
            self.fs.failed_syncs += 1
            raise self.fs.fault(self.fs.sync_error, self.path)
        if self.synced != self.size:
            self.fs.syncs += 1
            if self.fs.sync_delay:
                time.sleep(self.fs.sync_delay)  # a slow disk: group commits grow larger
        super().sync()
        self.fs.durable[self.path] = self.size

    def truncate(self, size: int) -> None:
        if self.fs.frozen:
            self.size = size
            return
        super().truncate(size)
        # An unsynced truncate may not survive a crash either, but it never makes data appear.
        self.fs.durable[self.path] = min(self.fs.durable[self.path], size)


class FaultFS:
    def __init__(self) -> None:
        self.files: list[FaultFile] = []
        self.appends: list[Append] = []
        self.frozen = False
        self.append_error: int | None = None
        self.sync_error: int | None = None
        self.sync_delay = 0.0  # seconds each real sync takes on top of the disk's own time
        self.faults_left: int | None = None  # None: until clear_faults()
        self.failed_appends = 0
        self.failed_syncs = 0
        self.syncs = 0
        self.dropped_bytes = 0
        self.durable: dict[Path, int] = {}  # path -> length that survives a crash

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FaultFS:
        real_atomic = fsio.write_atomically
        real_streamed = fsio.write_streamed_atomically
        real_sync_dir = fsio.sync_directory

        def write_atomically(path: Path, data: bytes) -> None:
            if not self.frozen:
                real_atomic(path, data)

        def write_streamed_atomically(path: Path, head_size: int, parts: Iterable[bytes | memoryview],
                                      head: Callable[[], bytes]) -> None:
            if not self.frozen:
                real_streamed(path, head_size, parts, head)

        def sync_directory(directory: Path) -> None:
            if not self.frozen:
                real_sync_dir(directory)

        monkeypatch.setattr(fsio, "open_append", lambda path: FaultFile(Path(path), self))
        monkeypatch.setattr(fsio, "write_atomically", write_atomically)
        monkeypatch.setattr(fsio, "write_streamed_atomically", write_streamed_atomically)
        monkeypatch.setattr(fsio, "sync_directory", sync_directory)
        return self

    # Faults -------------------------------------------------------------------------------

    def fail_appends(self, errno: int = errnos.ENOSPC, count: int | None = None) -> None:
        """Appends raise OSError(errno) after writing half their data: `count` times, or until cleared."""
        self.append_error, self.faults_left = errno, count

    def fail_syncs(self, errno: int = errnos.EIO, count: int | None = None) -> None:
        """Syncs with something to sync raise OSError(errno) (the data stays written, unsynced)."""
        self.sync_error, self.faults_left = errno, count

    def clear_faults(self) -> None:
        self.append_error = None
        self.sync_error = None
        self.faults_left = None

    def fault(self, errno: int, path: Path) -> OSError:
        if self.faults_left is not None:
            self.faults_left -= 1
            if self.faults_left <= 0:
                self.clear_faults()
        return OSError(errno, os.strerror(errno), str(path))

    # Crash --------------------------------------------------------------------------------

    def freeze(self) -> None:
        """The crash point: from now on nothing reaches the disk."""
        self.frozen = True

    def crash(self) -> None:
        """Drop every byte written after the last sync of each tracked file, then thaw."""
        if not self.frozen:
            self.freeze()
        for path, synced in self.durable.items():
            if not path.exists():
                continue
            size = path.stat().st_size
            if size > synced:
                self.dropped_bytes += size - synced
                os.truncate(path, synced)
        self.files = [f for f in self.files if f._fd >= 0]
        self.frozen = False

    async def crash_store(self, store: Store) -> None:
        """Power loss under a running store: freeze, let it close (writing nothing), truncate."""
        self.freeze()
        try:
            await store.close()
        except Exception:
            pass  # a crashed store may fail any way it likes while it releases its resources
        self.crash()

    def last_append(self) -> Append:
        assert self.appends, "no append went through stores.fsio.open_append"
        return self.appends[-1]
