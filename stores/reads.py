"""Reading stored messages back (Store.read, read_batch, position; stores/base.py "Reads").

`ReadGate` runs a store's blocking reads in worker threads and lets `close()` wait for them.
The rest serves the stores that keep one `Location` per live message (journal, appendlog): the
record that holds it, read with one pread per run of nearby records (a page's usually lie one after
another) and checked by the store's own decoder, once per record however many of its messages are
wanted.

Compaction moves live messages into a newer file and then deletes the old one. The store changes
a message's location before it deletes the file the old location points into, so a reader that
finds the file gone looks the message up again and reads it at its new place (or learns that it
was removed meanwhile). We retry rather than make deletion wait for readers: deletion stays the
writer thread's alone with no count of readers to keep, the race costs one more lookup when it
happens, and only the open can fail (POSIX keeps an unlinked file readable through a descriptor
already open on it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from stores.base import Page, StoreClosed, StoreCorrupted, StoredMessage, StoreError, check_page
from stores.order import Order

T = TypeVar("T")
Key = tuple[str, str]  # (queue, message_id)

# Each retry needs the message to have moved again, to a newer file, during the read: a bound
# this high is never reached unless something is wrong, and then it stops the loop.
MAX_MOVES = 16


class Location(NamedTuple):
    """The record holding a message: data file number, record offset, record size.

    A tuple, so that a million of them load from a checkpoint in C (`tuple.__new__` mapped over
    the rows) rather than through a Python constructor call each."""

    file: int
    offset: int
    length: int


Locate = Callable[[Sequence[Key]], dict[Key, Location]]  # the live ones' current locations
# Messages from the records at these locations of one file; FileNotFoundError if it is gone.
Load = Callable[[int, list[tuple[Key, Location]]], dict[Key, StoredMessage]]
# A store's decoder: the bytes read at a location, the size the index gave, how to name the place
# in errors, and the keys wanted from it -> the messages that record holds (at least the wanted
# ones: a decoder may skip building the others). StoreCorrupted if it is not such a record.
Decode = Callable[[bytes | memoryview, int, str, Set[Key]], dict[Key, StoredMessage]]
ReadAt = Callable[[int, int], bytes | memoryview]  # (offset, length) -> bytes


class Locator(Protocol):
    def locate(self, message_id: str) -> Location | None: ...


def locate_in(queues: Mapping[str, Locator], keys: Iterable[Key]) -> dict[Key, Location]:
    """A `Locate` over each queue's entries (stores/entries.py): where the live ones of `keys` are
    now; single lookups, safe in any thread beside the one writer."""
    found: dict[Key, Location] = {}
    for key in keys:
        entries = queues.get(key[0])
        loc = None if entries is None else entries.locate(key[1])
        if loc is not None:
            found[key] = loc
    return found


def fetch(
    pending: dict[Key, Location], locate: Locate, load: Load, name: Callable[[int], str]
) -> dict[Key, StoredMessage]:
    """Read the messages at `pending`, looking again where a file has gone; removed ones are left out."""
    found: dict[Key, StoredMessage] = {}
    for _ in range(MAX_MOVES):
        gone: dict[Key, Location] = {}
        for file, wanted in _by_file(pending).items():
            try:
                found.update(load(file, wanted))
            except FileNotFoundError:
                gone.update(wanted)
        if not gone:
            return found
        pending = {}
        for key, loc in locate(list(gone)).items():
            if loc == gone[key]:  # not moved: the file is missing under a live message
                problem = f"missing, but it holds message {key[1]!r} of {key[0]!r}"
                raise StoreCorrupted(name(loc.file), problem)
            pending[key] = loc
    raise StoreError(f"{len(pending)} message(s) kept moving while being read ({MAX_MOVES} times)")


# A page's records usually lie one after another in a file: they are read in *runs*, one pread
# each, a run going on over gaps of at most RUN_GAP bytes (records not wanted: cheaper to read
# past than to make another system call) and holding at most RUN_BYTES (bounds the buffer; a
# record larger than that is a run of its own).
RUN_GAP = 64 * 1024
RUN_BYTES = 4 * 1024 * 1024


def messages_at(
    read_at: ReadAt, name: str, wanted: Iterable[tuple[Key, Location]], decode: Decode
) -> dict[Key, StoredMessage]:
    """Live messages from their records in file `name`, each record read and decoded once, the
    records of a run (above) read with one `read_at(offset, length)`."""
    records: dict[int, tuple[int, set[Key]]] = {}  # record offset -> its length, keys wanted
    for key, loc in wanted:
        entry = records.get(loc.offset)
        if entry is None:
            records[loc.offset] = (loc.length, {key})
        else:
            entry[1].add(key)
    found: dict[Key, StoredMessage] = {}
    for start, end, run in _runs(records):
        data = memoryview(read_at(start, end - start))
        for offset in run:
            length, keys = records[offset]
            where, at = f"{name}@{offset}", offset - start
            held = decode(data[at : at + length], length, where, keys)
            for key in keys:
                message = held.get(key)
                if message is None:
                    raise StoreCorrupted(where, f"record does not hold message {key[1]!r} of {key[0]!r}")
                found[key] = message
    return found


def _runs(records: Mapping[int, tuple[int, object]]) -> Iterable[tuple[int, int, list[int]]]:
    """(start, end, record offsets) of each run of `records` (offset -> (length, ...)), in file order."""
    runs: list[tuple[int, int, list[int]]] = []
    start = end = -1
    run: list[int] = []
    for offset in sorted(records):
        stop = offset + records[offset][0]
        if run and offset - end <= RUN_GAP and stop - start <= RUN_BYTES:
            run.append(offset)
            end = max(end, stop)
            continue
        if run:
            runs.append((start, end, run))
        start, end, run = offset, stop, [offset]
    if run:
        runs.append((start, end, run))
    return runs


def load_file(path: Path, wanted: list[tuple[Key, Location]], decode: Decode) -> dict[Key, StoredMessage]:
    """`messages_at` for the file at `path`; FileNotFoundError if it is gone (see `fetch`).

    The file may be the one being appended to: a location is recorded only after its record has
    been written, and a read through another descriptor sees written bytes at once. Reads go
    through the descriptor, not the path: compaction may unlink the path once we have it open.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return messages_at(lambda offset, length: os.pread(fd, length, offset), path.name, wanted, decode)
    finally:
        os.close(fd)


def _by_file(pending: dict[Key, Location]) -> dict[int, list[tuple[Key, Location]]]:
    files: dict[int, list[tuple[Key, Location]]] = {}
    for key, loc in pending.items():
        files.setdefault(loc.file, []).append((key, loc))
    return files


def read_page(
    order_of: Callable[[], Order | None],
    queue: str,
    after: int | None,
    limit: int,
    read_at: Callable[[dict[Key, Location]], dict[Key, StoredMessage]],
) -> Page:
    """A page from a queue's order; what was removed before it was read is skipped and made up for.

    `order_of` is asked again each round: a queue that empties loses its QueueEntries and a later
    add makes a new one, and positions keep growing across the two. `read_at` reads the messages
    at the locations the order gave (a store's `fetch`: it looks again where a file has gone).
    """
    messages: list[StoredMessage] = []
    resume = after
    while len(messages) < limit and (order := order_of()) is not None:
        entries = order.after_located(resume, limit - len(messages))
        if not entries:
            break
        wanted = {(queue, message_id): loc for _, message_id, loc in entries}  # in store order
        found = read_at(wanted)
        messages.extend(found[key] for key in wanted if key in found)
        resume = entries[-1][0]
    # Every message listed was removed before it was read: an empty page, which leaves the position
    # where it was (stores/base.py, "Reads"); the next read walks past the removed ones again.
    return Page(messages, resume if messages else after)


class ReadGate:
    """Runs blocking reads in worker threads while open; `close()` refuses new ones and waits.

    Each read is a task of its own, shielded from its caller's cancellation: the thread cannot be
    stopped, and close() must not release what it reads (a LevelDB handle) while it runs.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._open = False
        self._reads: set[asyncio.Task[Any]] = set()

    def open(self) -> None:
        self._open = True

    def check(self) -> None:
        if not self._open:
            raise StoreClosed(f"{self._what} is not open")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        self.check()
        task: asyncio.Task[T] = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._reads.add(task)
        task.add_done_callback(self._done)
        return await asyncio.shield(task)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._reads.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that was cancelled no longer wants it

    async def close(self) -> None:
        self._open = False
        await asyncio.gather(*self._reads, return_exceptions=True)


class GatedReads:
    """`read` and `read_batch` for a store that answers both through two blocking lookups
    (`_read_keys`, `_read_page`) run on its ReadGate's worker thread. Put it before `Store`."""

    _reads: ReadGate

    def _read_keys(self, keys: list[Key]) -> dict[Key, StoredMessage]:
        raise NotImplementedError

    def _read_page(self, queue: str, after: int | None, limit: int) -> Page:
        raise NotImplementedError

    async def read(self, queue: str, message_id: str) -> StoredMessage | None:
        key = (queue, message_id)
        found = await self._reads.run(self._read_keys, [key])
        return found.get(key)

    async def read_batch(self, queue: str, after: int | None, limit: int) -> Page:
        check_page(after, limit)
        return await self._reads.run(self._read_page, queue, after, limit)
