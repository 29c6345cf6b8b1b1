"""The temporary store's files: segment files under one directory, written and read off the event loop.

`TempFiles` does the I/O and is used from one worker thread only; `TempStore` is what the broker
calls on the event loop. Every file operation goes to a single worker thread (a one-thread
executor), so they run in the order they were asked for: a read of a record always comes after
its write, and a segment's deletion after every write to it, with no lock. (aiofiles would run
each call on a thread of the default pool, in no guaranteed order, and would need that ordering
rebuilt on top.) Records placed in one event-loop turn are written with one call, a `pwrite` per
run of contiguous records.

No fsync, ever: the records are non-persistent messages (or a temporary queue's, which end with
its connection), which a crash loses by definition (the directory is wiped before the next master
uses it), so the page cache is as good as the disk, and
a torn or missing tail can only be read by this process, which checks every record (crc32c) and
drops one that fails.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from stores.base import StoreCorrupted, StoredMessage, StoreError
from stores.reads import Location
from stores.temp import records
from stores.temp.segments import Segments

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
SEGMENT_SIZE = 8 * MiB
TEMP_DIR = "tmp"  # under the data directory; one directory per broker name below it
DEFAULT_LIMIT = 50 * GiB  # ActiveMQ's tempUsage default
FREE_FRACTION = 0.5  # of the free space at start, when no limit is set: the store draws on it too
SUFFIX = ".tmp"
T = TypeVar("T")
Run = tuple[int, int, bytes]  # segment, offset, the records' bytes


def directory_for(data_dir: Path, name: str) -> Path:
    """`<data_dir>/tmp/<name>`, the name made safe as one path component (a hash tells apart
    names that only differ in the characters replaced)."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip(".") or "broker"
    if safe != name:
        safe = f"{safe[:100]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return Path(data_dir) / TEMP_DIR / safe


def wipe_all(data_dir: Path) -> None:
    """Remove every broker's temporary store under `<data_dir>/tmp/`. Only a master writes there,
    and a new master calls this once the previous one is provably gone: what is left is the
    non-persistent messages of brokers that stopped, which no one will read."""
    shutil.rmtree(Path(data_dir) / TEMP_DIR, ignore_errors=True)


def default_limit(free: int) -> int:
    """limits.temp_usage unset: the smaller of 50 GiB and half the free space."""
    return max(MiB, min(DEFAULT_LIMIT, int(free * FREE_FRACTION)))


class TempFiles:
    """Segment files `<directory>/<segment>.tmp`; for one thread only."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._fds: dict[int, int] = {}

    def path(self, segment: int) -> Path:
        return self.directory / f"{segment:08d}{SUFFIX}"

    def wipe(self) -> None:
        """Remove the directory and everything in it, then make it again, empty."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, runs: list[Run]) -> None:
        for segment, offset, data in runs:
            fd = self._fd(segment)
            view = memoryview(data)
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written

    def read(self, locations: list[Location]) -> list[StoredMessage | StoreCorrupted]:
        """The messages at `locations`, in that order; a record that is torn or damaged is its
        StoreCorrupted instead (the others are still read). One pread per run of adjacent records."""
        out: list[StoredMessage | StoreCorrupted] = []
        i = 0
        while i < len(locations):
            first = locations[i]
            j, end = i + 1, first.offset + first.length
            while j < len(locations) and locations[j].file == first.file and locations[j].offset == end:
                end += locations[j].length
                j += 1
            data = self._pread(first.file, first.offset, end - first.offset)
            for location in locations[i:j]:
                start = location.offset - first.offset
                where = f"{self.path(location.file)}@{location.offset}"
                try:
                    out.append(records.decode(memoryview(data)[start:start + location.length], where))
                except StoreCorrupted as exc:
                    out.append(exc)
            i = j
        return out

    def delete(self, segments: list[int]) -> None:
        for segment in segments:
            fd = self._fds.pop(segment, None)
            if fd is not None:
                os.close(fd)
            self.path(segment).unlink(missing_ok=True)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _fd(self, segment: int) -> int:
        fd = self._fds.get(segment)
        if fd is None:
            fd = os.open(self.path(segment), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fds[segment] = fd
        return fd

    def _pread(self, segment: int, offset: int, length: int) -> bytes:
        fd = self._fds.get(segment)
        if fd is None:  # never written by us, or deleted: nothing to read
            return b""
        return os.pread(fd, length, offset)


class TempStore:
    """The event loop's side: placement and accounting here, file I/O in the worker thread."""

    def __init__(self, directory: Path, segment_size: int = SEGMENT_SIZE) -> None:
        self.directory = Path(directory)
        self.segments = Segments(segment_size)
        self.files = TempFiles(self.directory)
        self.unwritten = 0  # bytes placed whose write has not finished
        self.failed: BaseException | None = None  # the first write that failed
        self.on_change: Callable[[], None] | None = None  # bytes or unwritten changed (flow control)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="temp-store")
        self._batch: list[tuple[Location, bytes]] = []
        self._batch_done: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def bytes(self) -> int:
        """Bytes of the segment files (records placed and not yet in a deleted segment)."""
        return self.segments.bytes

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def file_count(self) -> int:
        return len(self.segments)

    async def open(self) -> None:
        """Start empty: whatever an earlier broker left here is gone (its messages were non-persistent)."""
        await self._run(self.files.wipe)

    def append(self, message: StoredMessage) -> tuple[Location, asyncio.Future[None]]:
        """Place one record and queue its write; the future is done once it is written (it fails
        with StoreError if the write did). Writes of one event-loop turn go together."""
        if self._closed:
            raise StoreError("the temporary store is closed")
        record = records.encode(message)
        location, _ = self.segments.place(len(record))
        if self._batch_done is None:
            loop = asyncio.get_running_loop()
            self._batch_done = loop.create_future()
            loop.call_soon(self._flush)
        self._batch.append((location, record))
        self.unwritten += len(record)
        return location, self._batch_done

    async def read(self, locations: list[Location]) -> list[StoredMessage | StoreCorrupted]:
        """The messages at `locations` (written ones: see `append`); StoreError if the read failed."""
        try:
            return await self._run(functools.partial(self.files.read, locations))
        except OSError as exc:
            raise StoreError(f"temporary store {self.directory}: read failed: {exc}") from exc

    def release(self, locations: list[Location]) -> None:
        """These records are no longer needed (read back or dropped): their segments go once empty."""
        if not locations:
            return
        emptied = self.segments.release(locations)
        if emptied and not self._closed:
            job = asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(self.files.delete, emptied))
            job.add_done_callback(self._deleted)
        self._changed()

    async def close(self) -> None:
        """Write nothing more, remove the files, stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._flush()
        try:
            await self._run(self.files.wipe)
            await self._run(functools.partial(shutil.rmtree, self.directory, True))
        finally:
            self._executor.shutdown(wait=False)

    def abandon(self) -> None:
        """Write and remove nothing more, wait for nothing (the lock is lost and the file system
        may hang): the next master wipes the directory."""
        self._closed = True
        self._batch, self._batch_done = [], None
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _flush(self) -> None:
        batch, done = self._batch, self._batch_done
        self._batch, self._batch_done = [], None
        if done is None:
            return
        runs = _runs(batch)
        size = sum(len(record) for _, record in batch)
        job = asyncio.get_running_loop().run_in_executor(self._executor, self.files.write, runs)
        job.add_done_callback(functools.partial(self._written, done, size))

    def _written(self, done: asyncio.Future[None], size: int, job: asyncio.Future[None]) -> None:
        self.unwritten -= size
        error = asyncio.CancelledError() if job.cancelled() else job.exception()
        if error is None:
            done.set_result(None)
        else:
            if self.failed is None and not self._closed:  # abandoned: cancelled, not failed
                self.failed = error
                log.error("temporary store %s: write failed: %s", self.directory, error)
            done.set_exception(StoreError(f"temporary store {self.directory}: write failed: {error}"))
        self._changed()

    def _deleted(self, job: asyncio.Future[None]) -> None:
        if not job.cancelled() and job.exception() is not None:
            log.warning("temporary store %s: deleting a segment failed: %s", self.directory, job.exception())

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


def _runs(batch: list[tuple[Location, bytes]]) -> list[Run]:
    """Records that follow each other in one segment, joined into one write."""
    runs: list[Run] = []
    parts: list[bytes] = []
    segment = offset = end = -1
    for location, record in batch:
        if location.file != segment or location.offset != end:
            if parts:
                runs.append((segment, offset, b"".join(parts)))
            segment, offset, parts = location.file, location.offset, []
            end = offset
        parts.append(record)
        end += len(record)
    if parts:
        runs.append((segment, offset, b"".join(parts)))
    return runs
