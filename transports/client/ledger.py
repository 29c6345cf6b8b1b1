"""What a client must remember to survive a reconnect: producer ids, un-receipted sends and
active subscriptions.

These are plain in-memory structures with no I/O. A plain tcp:// client uses them to fail the
right futures when the link drops; a failover client (design.md section 5) replays them on the new
connection (`replay.plan_replay`): re-SUBSCRIBE every entry of `SubscriptionBook`, then resend
every `PendingSend` in order with its original `batonmq.producer-id`, so the broker's duplicate
detection drops a copy whose first RECEIPT was lost.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transports.client.errors import ClientError
from transports.stomp.commands import PRODUCER_ID_HEADER
from transports.stomp.frame import Frame

if TYPE_CHECKING:
    from transports.client.subscription import Subscription



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
    """A SEND whose RECEIPT has not arrived; `future` settles with that RECEIPT (or the error).

    `generation` is the connection it was last written on; `awaited` says whether a sender waits
    on `future` (a persistent send made with receipt=False is tracked all the same, so that a
    failover can resend it, but nobody awaits it).
    """

    key: int
    frame: Frame
    future: asyncio.Future[Frame]
    transmissions: int = 0
    generation: int = 0
    awaited: bool = True

    @property
    def producer_id(self) -> str:
        return self.frame.headers[PRODUCER_ID_HEADER]


class PendingSends:
    """Un-receipted sends in the order they were first sent, at most `limit` of them.

    The bound is a wait, not an error: `wait_for_room()` blocks a sender until receipts free a
    slot, which is the producer flow control a failover client needs (an unconfirmed send must be
    kept until its receipt, so an unbounded producer would otherwise grow memory without end).
    """

    def __init__(self, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError("the pending-send limit must be at least 1")
        self.limit = limit
        self._entries: dict[int, PendingSend] = {}
        self._ids = itertools.count()
        self._room: asyncio.Event | None = None
        self._empty: asyncio.Event | None = None

    @property
    def full(self) -> bool:
        return len(self._entries) >= self.limit

    def add(self, frame: Frame, loop: asyncio.AbstractEventLoop, *, awaited: bool = True) -> PendingSend:
        if self.full:
            raise ClientError(f"more than {self.limit} sends awaiting a receipt")
        entry = PendingSend(next(self._ids), frame, loop.create_future(), awaited=awaited)
        self._entries[entry.key] = entry
        self._signal()
        return entry

    def discard(self, entry: PendingSend) -> None:
        if self._entries.pop(entry.key, None) is not None:
            self._signal()

    async def wait_for_room(self) -> None:
        while self.full:
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()

    async def wait_empty(self) -> None:
        while self._entries:
            if self._empty is None:
                self._empty = asyncio.Event()
            await self._empty.wait()

    def _signal(self) -> None:
        if self._room is not None:
            if self.full:
                self._room.clear()
            else:
                self._room.set()
        if self._empty is not None:
            if self._entries:
                self._empty.clear()
            else:
                self._empty.set()

    def __len__(self) -> int:
        return len(self._entries)

    def in_order(self) -> list[PendingSend]:
        """Oldest first: the order a replay must resend them in."""
        return list(self._entries.values())

    def fail_all(self, exc: BaseException) -> None:
        for entry in self._entries.values():
            if not entry.future.done():
                entry.future.set_exception(exc)
                if not entry.awaited:
                    entry.future.exception()  # nobody awaits it: mark the error as seen
        self._entries.clear()
        self._signal()


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
