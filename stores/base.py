"""The store contract: every implementation passes tests/unit/stores/contract.py unchanged.

Model: a store holds named *queues* (a queue destination like ``/queue/orders``, or the key of a
durable topic subscription), each an ordered sequence of messages, plus durable-subscription
records and a window of producer message ids for duplicate detection. All changes go through
`write(ops)`: the batch is atomic (all or nothing after a crash) and, under the ``always`` sync
policy, durable when the await returns. Concurrent `write` calls share one fsync (group commit).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(slots=True, frozen=True)
class PutSubscription:
    subscription: DurableSubscription


@dataclass(slots=True, frozen=True)
class DropSubscription:
    key: str  # also drops every message stored under the key


Op = AddMessage | RemoveMessage | PutSubscription | DropSubscription


@dataclass(slots=True)
class Recovered:
    """What survives: per queue, messages in the order they were added."""

    queues: dict[str, list[StoredMessage]] = field(default_factory=dict)
    subscriptions: list[DurableSubscription] = field(default_factory=list)
    producer_ids: list[str] = field(default_factory=list)  # oldest first, at most duplicate_window


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


class Store(abc.ABC):
    """Open with `open()` only after the shared-directory lock is held."""

    kind: str  # "journal", "leveldb" or "appendlog": written into the directory's marker

    def __init__(self, directory: Path, settings: StoreSettings, fence: Fence | None = None) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.fence: Fence = fence or NoFence()
        self.on_commit: Callable[[int, float], None] | None = None  # (batch size, fsync seconds), for metrics

    @abc.abstractmethod
    async def open(self) -> Recovered:
        """Create or recover the store and return what survives."""

    @abc.abstractmethod
    async def write(self, ops: Sequence[Op]) -> None:
        """Apply `ops` atomically; durable on return under sync policy 'always'."""

    def start_write(self, ops: Sequence[Op]) -> asyncio.Future[None]:
        """Start `write(ops)` and return its future at once; the same outcome as awaiting `write`.

        The broker calls this once per persistent SEND. This default wraps `write` in a task; a
        store on a GroupCommitter may return `submit_nowait`'s future instead (no task per message).
        """
        return asyncio.ensure_future(self.write(ops))

    @abc.abstractmethod
    async def stats(self) -> StoreStats: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and close; later writes raise StoreClosed."""

    async def enqueue(self, queue: str, message: StoredMessage) -> None:
        await self.write([AddMessage(queue, message)])

    async def remove(self, queue: str, message_id: str) -> None:
        await self.write([RemoveMessage(queue, message_id)])
