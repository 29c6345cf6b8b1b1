"""The live state a journal follower keeps: the index plus every live message's content.

It is exactly what cold recovery builds (recovery.py): the `Index` (locations, subscriptions,
producer ids) and, per queue in index order, the `StoredMessage`s that `Recovered` lists. `apply`
mirrors `Index.apply` op by op and returns the changes that took effect, for a sink (the
broker's hot standby) that keeps its own form of the same state.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import crc32c
import msgpack

from stores.base import (
    AddMessage,
    DropSubscription,
    Op,
    PutSubscription,
    Recovered,
    RemoveMessage,
    StoredMessage,
)
from stores.journal import checkpoint as ckpt
from stores.journal.index import Index, Key, Location
from stores.journal.reader import read_messages
from stores.journal.records import JournalOp, Move

_HEADER = struct.Struct("<II")


class LiveState:
    def __init__(self, index: Index) -> None:
        self.index = index
        # queue → message id → content; the same order as index.queues (dicts keep insertion order,
        # and re-assigning an existing key keeps its place, as in Index).
        self.bodies: dict[str, dict[str, StoredMessage]] = {}

    def load(self, cp: ckpt.Checkpoint, directory: Path, check: Callable[[], None]) -> None:
        """Fill from a checkpoint and read every live message's record (cold recovery step 8)."""
        self.index.load(cp.queues)
        self.index.subscriptions = {s.key: s for s in cp.subscriptions}
        self.index.producers.extend(cp.producers)
        wanted: dict[int, list[tuple[Key, Location]]] = {}
        for queue, entries in self.index.queues.items():
            for message_id, loc in entries.items():
                wanted.setdefault(loc.file, []).append(((queue, message_id), loc))
        found: dict[Key, StoredMessage] = {}
        for file, keys in wanted.items():
            check()
            found.update(read_messages(directory, file, keys))
        self.bodies = {
            queue: {message_id: found[(queue, message_id)] for message_id in entries}
            for queue, entries in self.index.queues.items()
        }

    def apply(self, ops: Sequence[JournalOp], loc: Location) -> list[Op]:
        """Apply one BATCH record; return its effective changes (no-op removals left out)."""
        changes: list[Op] = []
        for op in ops:
            if isinstance(op, AddMessage):
                self.bodies.setdefault(op.queue, {})[op.message.message_id] = op.message
                changes.append(op)
            elif isinstance(op, RemoveMessage):
                if self._drop(op.queue, op.message_id):
                    changes.append(op)
            elif isinstance(op, PutSubscription):
                changes.append(op)
            elif isinstance(op, DropSubscription):
                self.bodies.pop(op.key, None)
                changes.append(op)
            elif isinstance(op, Move):
                entries = self.bodies.get(op.queue)
                if entries is not None and op.message.message_id in entries:
                    entries[op.message.message_id] = op.message  # the same content, at its new place
            self.index.apply([op], loc)
        return changes

    def _drop(self, queue: str, message_id: str) -> bool:
        entries = self.bodies.get(queue)
        if entries is None or entries.pop(message_id, None) is None:
            return False
        if not entries:
            del self.bodies[queue]
        return True

    def recovered(self) -> Recovered:
        return Recovered(
            queues={queue: list(entries.values()) for queue, entries in self.bodies.items()},
            subscriptions=list(self.index.subscriptions.values()),
            producer_ids=list(self.index.producers),
        )


@dataclass(slots=True, frozen=True)
class CheckpointHeader:
    epoch: int
    pos: tuple[int, int]
    files: dict[int, int | None]


def checkpoint_header(data: bytes) -> CheckpointHeader:
    """Check a checkpoint's CRC and read only its leading fields (cheap even with a million entries)."""
    if len(data) < len(ckpt.MAGIC) + _HEADER.size or not data.startswith(ckpt.MAGIC):
        raise ckpt.CheckpointError("bad magic")
    crc, length = _HEADER.unpack_from(data, len(ckpt.MAGIC))
    payload = memoryview(data)[len(ckpt.MAGIC) + _HEADER.size :]
    if len(payload) != length or crc32c.crc32c(payload) != crc:
        raise ckpt.CheckpointError("length or CRC mismatch")
    unpacker = msgpack.Unpacker(raw=False, use_list=True, max_buffer_size=len(payload))
    unpacker.feed(payload)
    fields: dict[str, object] = {}
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key in ("epoch", "pos", "files"):
                fields[key] = unpacker.unpack()
            else:
                unpacker.skip()
            if len(fields) == 3:
                break
        epoch, pos, files = fields["epoch"], fields["pos"], fields["files"]
        return CheckpointHeader(
            epoch=int(epoch),  # type: ignore[call-overload]
            pos=(int(pos[0]), int(pos[1])),  # type: ignore[index]
            files={int(n): (None if end is None else int(end)) for n, end in files},  # type: ignore[attr-defined]
        )
    except (KeyError, TypeError, ValueError, IndexError, msgpack.UnpackException) as exc:
        raise ckpt.CheckpointError(f"malformed content: {exc}") from None
