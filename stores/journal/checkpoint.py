"""Checkpoints: the index as of a journal position (FORMAT.md section 3). Encode/decode are pure."""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass, field

import crc32c
import msgpack

from stores.base import DurableSubscription
from stores.journal.index import Index, Location

MAGIC = b"BMQJCKP1"
_HEADER = struct.Struct("<II")  # crc32c of payload, payload length -- little-endian
MAX_CHECKPOINT = 1 << 32


class CheckpointError(ValueError):
    pass


@dataclass(slots=True)
class Checkpoint:
    epoch: int
    pos: tuple[int, int]  # (data file, offset): every record before it is reflected
    files: dict[int, int | None]  # known data files → honoured end (None: the open file)
    queues: list[tuple[str, Collection[tuple[str, Location]]]] = field(default_factory=list)
    subscriptions: list[DurableSubscription] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)


def snapshot(index: Index, epoch: int, pos: tuple[int, int], files: dict[int, int | None]) -> Checkpoint:
    """Copy what a checkpoint needs out of `index` (call on the writer thread)."""
    return Checkpoint(
        epoch=epoch,
        pos=pos,
        files=dict(files),
        # dict(): a copy in C, one object per queue; a list of items made a tuple per message, and
        # 100,000 new objects set off young collections that walked them all (tens of ms).
        queues=[(q, dict(entries).items()) for q, entries in index.queues.items()],
        subscriptions=list(index.subscriptions.values()),
        producers=list(index.producers),
    )


def encode(cp: Checkpoint) -> bytes:
    # The same bytes as packb() of the map {epoch, pos, files, queues, subs, producers}, packed one
    # entry at a time: one C call over a million entries held the GIL for a quarter second and
    # starved the master's keep-alive thread (and a million live temporaries triggered a full GC).
    packer = msgpack.Packer(use_bin_type=True)
    parts = [packer.pack_map_header(6), packer.pack("epoch"), packer.pack(cp.epoch),
             packer.pack("pos"), packer.pack(list(cp.pos)),
             packer.pack("files"), packer.pack([[n, end] for n, end in sorted(cp.files.items())]),
             packer.pack("queues"), packer.pack_array_header(len(cp.queues))]
    for q, entries in cp.queues:
        parts += [packer.pack_array_header(2), packer.pack(q), packer.pack_array_header(len(entries))]
        parts.extend(packer.pack([mid, loc.file, loc.offset, loc.length]) for mid, loc in entries)
    subs = [s.fields() for s in cp.subscriptions]
    parts += [packer.pack("subs"), packer.pack(subs), packer.pack("producers"), packer.pack(cp.producers)]
    payload = b"".join(parts)
    return MAGIC + _HEADER.pack(crc32c.crc32c(payload), len(payload)) + payload


def decode(data: bytes) -> Checkpoint:
    """Parse a checkpoint; CheckpointError says what is wrong."""
    if len(data) < len(MAGIC) + _HEADER.size or not data.startswith(MAGIC):
        raise CheckpointError("bad magic")
    crc, length = _HEADER.unpack_from(data, len(MAGIC))
    payload = data[len(MAGIC) + _HEADER.size :]
    if len(payload) != length:
        raise CheckpointError(f"payload is {len(payload)} bytes, header says {length}")
    if crc32c.crc32c(payload) != crc:
        raise CheckpointError("CRC mismatch")
    try:
        body = msgpack.unpackb(payload, raw=False, use_list=True)
        return Checkpoint(
            epoch=_int(body["epoch"]),
            pos=(_int(body["pos"][0]), _int(body["pos"][1])),
            files={_int(n): (None if end is None else _int(end)) for n, end in body["files"]},
            queues=[
                (_str(q), [(_str(mid), Location(_int(f), _int(o), _int(n))) for mid, f, o, n in entries])
                for q, entries in body["queues"]
            ],
            subscriptions=[_subscription(s) for s in body["subs"]],
            producers=[_str(p) for p in body["producers"]],
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"malformed content: {exc}") from None


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _subscription(fields: object) -> DurableSubscription:
    # Five fields, or six with an owner (FORMAT.md section 3).
    if not (isinstance(fields, list) and DurableSubscription.valid_fields(fields)):
        raise ValueError(f"malformed subscription {str(fields)[:200]}")
    return DurableSubscription(*fields)
