"""Checkpoints: the index as of a journal position (FORMAT.md section 3). Encode/decode are pure."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from operator import itemgetter

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
    # Per queue in index order: its message ids and, in the same order, their locations (columns:
    # a million entries load as a few list operations, not a million pairs).
    queues: list[tuple[str, list[str], list[Location]]] = field(default_factory=list)
    subscriptions: list[DurableSubscription] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)


def snapshot(index: Index, epoch: int, pos: tuple[int, int], files: dict[int, int | None]) -> Checkpoint:
    """Copy what a checkpoint needs out of `index` (call on the writer thread)."""
    return Checkpoint(
        epoch=epoch,
        pos=pos,
        files=dict(files),
        queues=[(q, list(entries), list(entries.values())) for q, entries in index.queues.items()],
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
    for q, ids, locations in cp.queues:
        parts += [packer.pack_array_header(2), packer.pack(q), packer.pack_array_header(len(ids))]
        parts.extend(packer.pack([mid, loc.file, loc.offset, loc.length])
                     for mid, loc in zip(ids, locations, strict=True))
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
            queues=[(_str(q), *_columns(entries)) for q, entries in body["queues"]],
            subscriptions=[_subscription(s) for s in body["subs"]],
            producers=[_str(p) for p in body["producers"]],
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"malformed content: {exc}") from None


def _columns(entries: object) -> tuple[list[str], list[Location]]:
    """One queue's [id, file, offset, length] entries as ids and locations. Every step maps a C
    function over a whole column (a million entries are most of a cold open's work)."""
    if not isinstance(entries, list) or set(map(len, entries)) - {4}:
        raise ValueError("a queue's entries are not arrays of four fields")
    ids = list(map(_ID, entries))
    if set(map(type, ids)) - {str}:
        raise ValueError("a message id is not a string")
    locations = list(map(_LOCATION, map(_NUMBERS, entries)))
    numbers = chain.from_iterable(locations)
    if set(map(type, numbers)) - {int} or min(chain.from_iterable(locations), default=0) < 0:
        raise ValueError("a location holds something other than a non-negative integer")
    return ids, locations


_ID = itemgetter(0)
_NUMBERS = itemgetter(slice(1, 4))
_LOCATION = partial(tuple.__new__, Location)  # Location(*numbers), without a Python call


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
