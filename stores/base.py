"""The store contract: every implementation passes tests/unit/stores/contract.py unchanged.

Model: a store holds named *queues* (a queue destination like ``/queue/orders``, or the key of a
durable topic subscription), each an ordered sequence of messages, plus durable-subscription
records and a window of producer message ids for duplicate detection. All changes go through
`write(ops)`: the batch is atomic (all or nothing after a crash) and, under the ``always`` sync
policy, durable when the await returns. Concurrent `write` calls share one fsync (group commit).

Recovery (the store cursor, docs/paging.md). `open()` rebuilds the store's index (where each
message is), never every body, and hands over `Recovered`: the subscriptions, the producer ids, and
per queue its *head* and its *depth*. The head, `Recovered.queues[key]`, is a prefix in store order
of that queue's messages holding at most about `settings.cursor_window` bytes (`stored_bytes`), and
at least one message when the queue is not empty; `Recovered.depths[key]` is how many messages the
queue holds in all. The rest are read on demand, starting after the position of the last head
message (`read_batch(key, position(key, head[-1].message_id), n)`). A key missing from `depths`
(a `Recovered` built by hand) means its head is all of it: `Recovered.depth(key)`. A follower's
`FollowerSink.reset` gets heads and depths the same way; `changed` still carries each AddMessage
with its message.

Reads (the paging seam). A store keeps in memory only what it needs to find each message (a
location or a key) and reads the message itself from its files when asked:

- `read(queue, message_id)`: the message, or None when `queue` does not hold it (never added,
  removed, dropped with its subscription, or an unknown queue).
- `read_batch(queue, after, limit)`: a `Page` of at most `limit` (>= 1) messages of `queue` in
  store order, which is the order they were added to that queue and the order `Recovered` lists
  them in, starting after position `after` (None: from the start). Pass `page.next` as `after` to
  read on; it equals `after` when the page is empty. Removed messages are skipped; an unknown
  queue gives an empty page. A page holds fewer than `limit` messages only when the queue had no
  more after it at the time of the read.
- `position(queue, message_id)`: where a stored message stands in store order (None: not
  stored), so a reader can start a page right after a message it already has. Not a coroutine:
  every store keeps this map in memory anyway, to turn a RemoveMessage into what it deletes.

Positions are integers that grow in store order within a queue. They are the reader's bookmark,
not the message id, because the message a reader stopped at is often removed (consumed) before it
asks for the next page; a position stays valid after its message is gone. A position means
something only to the store object that gave it, while that object is open: after a reopen,
start again from None.

A read sees committed messages only: a message becomes readable once its write has reached the
store's files (before `write` returns) and stops being readable once its removal has (a read that
overlaps the write sees it or not). Reads do their file I/O in a worker thread, never on the event
loop, and run while writes, checkpoints and compaction go on; a read that races with compaction
moving a message to a new file and deleting the old one reads it at its new place. A record that
fails its CRC, or that does not hold the message the store's index expects there, raises
`StoreCorrupted` naming file@offset (LevelDB: the key). Reading a store that is not open raises
`StoreClosed`; `close()` waits for the reads in flight.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from config.errors import BrokerError
from config.model import StoreSettings


class StoreError(BrokerError):
    """A store operation failed (I/O error, disk full); nothing acknowledged was lost."""


class StoreCorrupted(StoreError):
    """Stored data is damaged somewhere other than a torn tail; `where` names file and offset."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where


class StoreMismatch(StoreError):
    """The data directory was written by another store type."""


class StoreClosed(StoreError):
    """The store is closed or fenced off (lock lost): no further writes are accepted."""


@dataclass(slots=True)
class StoredMessage:
    message_id: str  # broker-assigned, unique within the store
    destination: str  # the destination the producer sent to, e.g. /queue/a or /topic/b
    headers: dict[str, str]
    body: bytes
    producer_id: str | None = None  # the producer's duplicate-detection id, if it sent one


@dataclass(slots=True, frozen=True)
class AddMessage:
    queue: str
    message: StoredMessage


@dataclass(slots=True, frozen=True)
class RemoveMessage:
    queue: str
    message_id: str


@dataclass(slots=True, frozen=True)
class DurableSubscription:
    key: str  # the queue name its messages are stored under
    client_id: str
    name: str
    destination: str  # /topic/...
    selector: str | None = None
    # The user who created it (docs/security.md, "Ownership"); None: made without authentication
    # or by a version before owners were kept. Stores write it only when set, so a store used
    # without authentication keeps the older five-field records.
    owner: str | None = None

    def fields(self) -> list[str | None]:
        """The record every store writes: five fields, a sixth only when there is an owner."""
        base = [self.key, self.client_id, self.name, self.destination, self.selector]
        return base if self.owner is None else [*base, self.owner]

    @staticmethod
    def valid_fields(fields: object) -> bool:
        """Four strings, a string or nil selector, and optionally a string owner."""
        if not isinstance(fields, list) or len(fields) not in (5, 6):
            return False
        strings, selector, owner = fields[:4], fields[4], fields[5:]
        return (all(isinstance(f, str) for f in strings) and (selector is None or isinstance(selector, str))
                and all(isinstance(f, str) for f in owner))


@dataclass(slots=True, frozen=True)
class PutSubscription:
    subscription: DurableSubscription


@dataclass(slots=True, frozen=True)
class DropSubscription:
    key: str  # also drops every message stored under the key


Op = AddMessage | RemoveMessage | PutSubscription | DropSubscription


def stored_bytes(message: StoredMessage) -> int:
    """What a message counts against `cursor_window`: its body and headers (not the store's framing)."""
    return len(message.body) + sum(len(k) + len(v) for k, v in message.headers.items())


@dataclass(slots=True)
class Recovered:
    """What survives: per queue its head (a prefix in store order) and its depth (module docstring)."""

    queues: dict[str, list[StoredMessage]] = field(default_factory=dict)
    subscriptions: list[DurableSubscription] = field(default_factory=list)
    producer_ids: list[str] = field(default_factory=list)  # oldest first, at most duplicate_window
    depths: dict[str, int] = field(default_factory=dict)  # queue -> messages stored in all

    def depth(self, key: str) -> int:
        """How many messages `key` holds in the store (its head's length if `depths` omits it)."""
        found = self.depths.get(key)
        return len(self.queues.get(key, ())) if found is None else found


@dataclass(slots=True)
class Page:
    """One `Store.read_batch` answer: messages in store order, and the position to resume after."""

    messages: list[StoredMessage]
    next: int | None  # pass as `after` for the following page; the same `after` if no messages


def check_page(after: int | None, limit: int) -> None:
    """The argument checks every store's read_batch makes, worded once."""
    if limit < 1:
        raise ValueError(f"read_batch limit must be at least 1, got {limit}")
    if after is not None and after < 0:
        raise ValueError(f"read_batch position must be None or >= 0, got {after}")


@dataclass(slots=True)
class StoreStats:
    messages: int
    bytes: int  # bytes on disk
    files: int


class Fence(abc.ABC):
    """Proof that we still hold the shared-directory lock (see docs/lock-protocol.md).

    A store calls `check()` after a group commit is durable and before it resolves the waiters:
    a deposed master therefore acknowledges nothing.
    """

    epoch: int

    @abc.abstractmethod
    def check(self) -> None:
        """Raise StoreClosed if the lock is no longer ours."""


class NoFence(Fence):
    """For tests and tools that open a store without the broker's lock."""

    epoch = 0

    def check(self) -> None:
        return None


class FollowerSink(Protocol):
    """Receives a followed store's live state: on every (re)build its heads and depths, as
    `Store.open()` hands them over (module docstring, Recovery), then each effective change in
    order, an AddMessage with its message (the hot standby; docs/hot-standby.md)."""

    def reset(self, recovered: Recovered) -> None: ...

    def changed(self, ops: list[Op]) -> None: ...


class FollowInterrupted(Exception):
    """`StoreFollower.interrupt()` was called during a poll; a sink may raise it too, after
    `interrupted()` said so, to abandon a long rebuild."""


class StoreFollower(Protocol):
    """A read-only tail of a store that another process (the master) is writing.

    `poll()` runs on a worker thread and feeds the sink; `interrupt()` makes a running poll return
    soon. At takeover the new master's store, given the follower (`Store.follow_from`), finishes
    the follower's replay in `open()` instead of recovering from scratch.
    """

    @property
    def ready(self) -> bool: ...

    reason: str | None  # why the followed state is not usable now; None when ready

    def poll(self) -> bool: ...

    def interrupt(self) -> None: ...

    def interrupted(self) -> bool: ...

    def position(self) -> str: ...

    def close(self) -> None: ...


class Store(abc.ABC):
    """Open with `open()` only after the shared-directory lock is held."""

    kind: str  # "journal", "leveldb" or "appendlog": written into the directory's marker

    def __init__(self, directory: Path, settings: StoreSettings, fence: Fence | None = None) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.fence: Fence = fence or NoFence()
        self.on_commit: Callable[[int, float], None] | None = None  # (batch size, fsync seconds), for metrics
        self.warm = False  # open() finished a follower's replay instead of recovering cold

    # Following: an optional capability. A store that can be tailed by a slave returns a follower
    # here; the default says it cannot, and the slave then recovers cold at takeover.

    @classmethod
    def follower(cls, directory: Path, settings: StoreSettings, sink: FollowerSink) -> StoreFollower | None:
        """A read-only follower of the store at `directory` (not opened by us), or None."""
        return None

    def follow_from(self, follower: StoreFollower) -> bool:
        """Let `open()` finish `follower`'s replay (then `warm` is set); False if it cannot."""
        return False

    @abc.abstractmethod
    async def open(self) -> Recovered:
        """Create or recover the store and return what survives."""

    @abc.abstractmethod
    async def write(self, ops: Sequence[Op]) -> None:
        """Apply `ops` atomically; durable on return under sync policy 'always'."""

    def start_write(self, ops: Sequence[Op], source: Hashable = None) -> asyncio.Future[None]:
        """Start `write(ops)` and return its future at once; the same outcome as awaiting `write`.

        The broker calls this once per persistent SEND. This default wraps `write` in a task; a
        store on a GroupCommitter may return `submit_nowait`'s future instead (no task per message),
        and share its groups fairly between the writes' `source`s (a connection; None: the broker).
        """
        return asyncio.ensure_future(self.write(ops))

    @abc.abstractmethod
    async def read(self, queue: str, message_id: str) -> StoredMessage | None:
        """The stored message, or None if `queue` does not hold it (module docstring: Reads)."""

    @abc.abstractmethod
    async def read_batch(self, queue: str, after: int | None, limit: int) -> Page:
        """At most `limit` messages of `queue` in store order after position `after` (None: first)."""

    @abc.abstractmethod
    def position(self, queue: str, message_id: str) -> int | None:
        """The position of a stored message in its queue's store order; None if it is not stored."""

    @abc.abstractmethod
    async def stats(self) -> StoreStats: ...

    async def reclaim(self) -> None:
        """Give disk space back now that messages were removed (cleanup, compaction); the usage
        monitor calls it while the store is at its limit (stores/usage.py). Default: nothing to do."""
        return None

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and close; later writes raise StoreClosed."""

    async def enqueue(self, queue: str, message: StoredMessage) -> None:
        await self.write([AddMessage(queue, message)])

    async def remove(self, queue: str, message_id: str) -> None:
        await self.write([RemoveMessage(queue, message_id)])
