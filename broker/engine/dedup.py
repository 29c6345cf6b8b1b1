"""Duplicate detection by producer-supplied id (header `batonmq.producer-id`), as KahaDB's producer audit.

A client that resends after failover (its SEND was written but the RECEIPT was lost) must not create a
second copy. The window holds the most recent ids, oldest evicted first, rebuilt at start from
`Recovered.producer_ids`. An id whose store write is still in flight is already in the window, with the
write's future, so a duplicate is receipted only once the original is durable.

Scope (docs/security.md, "Producer ids"): an id counts only against earlier sends of the same
user, so that nobody can send ahead with the ids another producer will use next (they are visible
to every consumer) and have that producer's receipted messages dropped as duplicates. The key
kept, in memory and in the store, is `scoped_id(scope, id)`: the scope is the authenticated user
for a named user, and the user plus the client's IP address for an anonymous one (all anonymous
clients share one name; the address is what TCP does not let a remote peer forge). Never the
connection: the failover client resends from a new connection after a takeover, and that resend
must still meet its original. Ids recovered from a store written before scopes existed (no
SCOPED prefix) still match a resend of the same id from anyone, until they leave the window.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from broker.engine.auth import Principal, host_of

SCOPED = "~"


def scoped_id(scope: str, producer_id: str) -> str:
    """The key of `producer_id` sent under `scope`; the length makes "a:b" + "c" differ from "a" + "b:c"."""
    return f"{SCOPED}{len(scope)}:{scope}:{producer_id}"


def producer_scope(principal: Principal, peer: str) -> str:
    """The scope of a session's producer ids: its user, and its IP address if it is anonymous."""
    if principal.anonymous:
        return f"a:{principal.name}@{host_of(peer)}"
    return f"u:{principal.name}"


def unscoped(key: str) -> str:
    """The producer's own id inside a key made by `scoped_id` (a legacy key is its own id)."""
    if not key.startswith(SCOPED):
        return key
    length, sep, rest = key[1:].partition(":")
    return rest[int(length) + 1:] if sep and length.isdigit() else key


class ProducerWindow:
    def __init__(self, size: int, recovered: list[str] | None = None) -> None:
        self.size = size
        self._ids: OrderedDict[str, asyncio.Future[None] | None] = OrderedDict()
        for producer_id in (recovered or [])[-size:] if size else []:
            self._ids[producer_id] = None
        # Unscoped ids from an older store: looked up by the bare id as well while any may remain.
        self._legacy = any(not key.startswith(SCOPED) for key in self._ids)

    def __contains__(self, producer_id: str) -> bool:
        if producer_id in self._ids:
            return True
        return self._legacy and unscoped(producer_id) in self._ids

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
