"""Store order of one queue, for reading messages back a page at a time (Store.read_batch).

Each live message id has a *position*, an integer that grows in the order messages were added,
so a reader can resume after a position even once the message that held it is gone (a cursor's
last message is often consumed before it asks for the next page). Both file stores keep it in
their QueueEntries (stores/entries.py).

One writer thread changes a queue's order; reader threads call `after` and `position` at the
same time without a lock. That is safe under CPython's GIL because a reader only does single
dict lookups, array indexing and a bisect, each atomic, and the writer only appends to the
arrays a reader may be walking (the position last, so no slot is visible before the rest of it)
or replaces them with new ones, never reorders them in place. A reader that walks a replaced
array sees the order as it was when it started, which is a moment the read can be ordered at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # stores.reads imports this module
    from stores.reads import Location


class Order(Protocol):
    """What a page read needs of a queue's order (a QueueEntries)."""

    def after(self, position: int | None, limit: int) -> list[tuple[int, str]]: ...

    def after_located(self, position: int | None, limit: int) -> list[tuple[int, str, Location]]: ...

    def position(self, message_id: str) -> int | None: ...
