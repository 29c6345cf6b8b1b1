"""The live state a journal follower keeps: the index, as cold recovery builds it (recovery.py).

Only locations, subscriptions and producer ids, never the messages: a (re)build hands its sink
the heads and depths that the store's open would (read from the files at the index's locations),
and `apply` mirrors `Index.apply` op by op, returning the changes that took effect (each
AddMessage with its message, as the record carried it) for a sink, the broker's hot standby,
that keeps its own form of the same state.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stores.base import (
    AddMessage,
    DropSubscription,
    Op,
    PutSubscription,
    Recovered,
    RemoveMessage,
    StoredMessage,
)
from stores.heads import pages_of, recovered_heads
from stores.journal import checkpoint as ckpt
from stores.journal.index import Index, Key, Location
from stores.journal.layout import data_name
from stores.journal.reader import load_messages
from stores.journal.records import JournalOp
from stores.reads import fetch

_HEADER = struct.Struct("<II")


class LiveState:
    def __init__(self, index: Index) -> None:
        self.index = index

    def load(self, cp: ckpt.Checkpoint) -> None:
        """Fill from a checkpoint (cold recovery step 2): locations only, nothing is read."""
        self.index.load(cp.prefixes, cp.loading(), cp.records)
        self.index.subscriptions = {s.key: s for s in cp.subscriptions}
        self.index.producers.extend(cp.producers)

    def apply(self, ops: Sequence[JournalOp], loc: Location) -> list[Op]:
        """Apply one BATCH record; return its effective changes (no-op removals left out)."""
        changes: list[Op] = []
        for op in ops:
            if isinstance(op, AddMessage | PutSubscription | DropSubscription):
                changes.append(op)
            elif isinstance(op, RemoveMessage):
                if op.message_id in self.index.queues.get(op.queue, {}):
                    changes.append(op)
            # A Move only relocates a live message: nothing a sink sees changes.
            self.index.apply([op], loc)
        return changes

    def recovered(self, directory: Path, window: int, check: Callable[[], None]) -> Recovered:
        """Heads and depths, as the store's open hands over (cold recovery step 8), read from the
        files at the index's locations; `check` runs before each page (it may raise to abandon)."""
        index = self.index
        load = functools.partial(load_messages, directory)

        def read_keys(keys: list[Key]) -> dict[Key, StoredMessage]:
            return fetch(index.find(keys), index.find, load, data_name)

        def read_checked(keys: list[Key]) -> dict[Key, StoredMessage]:
            check()
            return read_keys(keys)

        read = pages_of(index.orders.get, read_checked)
        return recovered_heads(index.depths(), read, window, index.subscriptions.values(), index.producers)


@dataclass(slots=True, frozen=True)
class CheckpointHeader:
    epoch: int
    pos: tuple[int, int]
    files: dict[int, int | None]


def checkpoint_header(path: Path) -> CheckpointHeader:
    """Check a checkpoint's frame (CRC, read a part at a time: a ten-million-message checkpoint is
    200 MB) and read only its leading fields."""
    fields = ckpt.leading_fields(path, ("epoch", "pos", "files"))
    try:
        epoch, pos, files = fields["epoch"], fields["pos"], fields["files"]
        return CheckpointHeader(
            epoch=int(epoch),  # type: ignore[call-overload]
            pos=(int(pos[0]), int(pos[1])),  # type: ignore[index]
            files={int(n): (None if end is None else int(end)) for n, end in files},  # type: ignore[attr-defined]
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ckpt.CheckpointError(f"malformed content: {exc}") from None
