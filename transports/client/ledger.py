"""What a client must remember to survive a reconnect: producer ids, un-receipted sends and
active subscriptions.

These are plain in-memory structures with no I/O. Today the plain tcp:// client only uses them
to fail the right futures when the link drops; the failover layer (design.md section 5) will
replay them on the new connection: re-SUBSCRIBE every entry of `SubscriptionBook`, then resend
every `PendingSend` in order with its original `batonmq.producer-id`, so the broker's duplicate
detection drops a copy whose first RECEIPT was lost.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transports.client.errors import ClientError
from transports.stomp.frame import Frame

if TYPE_CHECKING:
    from transports.client.subscription import Subscription

PRODUCER_ID_HEADER = "batonmq.producer-id"


class ProducerIds:
    """`<client uuid>:<seq>`: unique across clients (uuid4) and within one (a counter)."""

    __slots__ = ("client_uuid", "_seq")

    def __init__(self, client_uuid: str | None = None) -> None:
        self.client_uuid = client_uuid or uuid.uuid4().hex
        self._seq = itertools.count(1)

    def next(self) -> str:
        return f"{self.client_uuid}:{next(self._seq)}"


@dataclass(eq=False, slots=True)
class PendingSend:
    """A SEND whose RECEIPT has not arrived; `future` is what the sender awaits."""

    key: int
    frame: Frame
    future: asyncio.Future[Frame]
    transmissions: int = 0

    @property
    def producer_id(self) -> str:
        return self.frame.headers[PRODUCER_ID_HEADER]


@dataclass(slots=True)
class PendingSends:
    """Un-receipted sends in the order they were first sent, bounded by `limit`."""

    limit: int = 10_000
    _entries: dict[int, PendingSend] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def add(self, frame: Frame, loop: asyncio.AbstractEventLoop) -> PendingSend:
        if len(self._entries) >= self.limit:
            # A bound on memory: each sender awaits its receipt, so only that many concurrent senders trip it.
            raise ClientError(f"more than {self.limit} sends awaiting a receipt")
        entry = PendingSend(next(self._ids), frame, loop.create_future())
        self._entries[entry.key] = entry
        return entry

    def discard(self, entry: PendingSend) -> None:
        self._entries.pop(entry.key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def in_order(self) -> list[PendingSend]:
        """Oldest first: the order a replay must resend them in."""
        return list(self._entries.values())

    def fail_all(self, exc: BaseException) -> None:
        for entry in self._entries.values():
            if not entry.future.done():
                entry.future.set_exception(exc)
        self._entries.clear()


class SubscriptionBook:
    """Active subscriptions by id; the id is what MESSAGE frames name in `subscription`."""

    __slots__ = ("_by_id", "_ids")

    def __init__(self) -> None:
        self._by_id: dict[str, Subscription] = {}
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        return f"sub-{next(self._ids)}"

    def add(self, sub: Subscription) -> None:
        self._by_id[sub.id] = sub

    def remove(self, sub_id: str) -> None:
        self._by_id.pop(sub_id, None)

    def get(self, sub_id: str | None) -> Subscription | None:
        if sub_id is None:
            # STOMP 1.0 brokers may omit `subscription`; with one subscription there is no doubt.
            return next(iter(self._by_id.values())) if len(self._by_id) == 1 else None
        return self._by_id.get(sub_id)

    def __iter__(self) -> Iterator[Subscription]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)


def merge_headers(base: dict[str, str], extra: dict[str, Any] | None) -> dict[str, str]:
    """User headers first, then ours on top: a user must not be able to spoof routing headers."""
    merged = {str(k): str(v) for k, v in (extra or {}).items()}
    merged.update(base)
    return merged
