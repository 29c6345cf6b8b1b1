"""Duplicate detection by producer-supplied id (header `batonmq.producer-id`), as KahaDB's producer audit.

A client that resends after failover (its SEND was written but the RECEIPT was lost) must not create a
second copy. The window holds the most recent ids, oldest evicted first, rebuilt at start from
`Recovered.producer_ids`. An id whose store write is still in flight is already in the window, with the
write's future, so a duplicate is receipted only once the original is durable.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class ProducerWindow:
    def __init__(self, size: int, recovered: list[str] | None = None) -> None:
        self.size = size
        self._ids: OrderedDict[str, asyncio.Future[None] | None] = OrderedDict()
        for producer_id in (recovered or [])[-size:] if size else []:
            self._ids[producer_id] = None

    def __contains__(self, producer_id: str) -> bool:
        return producer_id in self._ids

    def pending(self, producer_id: str) -> asyncio.Future[None] | None:
        """The original's store write if still in flight (None once durable or never written)."""
        future = self._ids.get(producer_id)
        return None if future is None or future.done() else future

    def add(self, producer_id: str, write: asyncio.Future[None] | None) -> None:
        if self.size <= 0:
            return
        self._ids[producer_id] = write
        self._ids.move_to_end(producer_id)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def discard(self, producer_id: str) -> None:
        """The original failed to persist: a resend must be accepted as new."""
        self._ids.pop(producer_id, None)

    def __len__(self) -> int:
        return len(self._ids)
