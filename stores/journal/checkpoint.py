"""Checkpoints: the index as of a journal position (FORMAT.md section 3). Encode/decode are pure."""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import and_, itemgetter, lshift, or_, rshift

import crc32c
import msgpack

from stores.base import DurableSubscription
from stores.journal.entries import FILE_SHIFT, MAX_FILE, MAX_LENGTH, MAX_OFFSET
from stores.journal.index import Columns, Index, Location

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
    # Per queue in index order: its message ids and, in the same order, their places (file << 40 |
    # offset) and record lengths (columns: a million entries load as a few C calls into the index's
    # own arrays, not a million objects).
    queues: list[Columns] = field(default_factory=list)
    subscriptions: list[DurableSubscription] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)


def snapshot(index: Index, epoch: int, pos: tuple[int, int], files: dict[int, int | None]) -> Checkpoint:
    """Copy what a checkpoint needs out of `index` (call on the writer thread)."""
    return Checkpoint(
        epoch=epoch,
        pos=pos,
        files=dict(files),
        queues=[(q, *entries.columns()) for q, entries in index.queues.items()],
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
    for q, ids, places, lengths in cp.queues:
        parts += [packer.pack_array_header(2), packer.pack(q), packer.pack_array_header(len(ids))]
        parts.extend(_entries(packer, ids, places, lengths))
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
        body = _body(payload)
        return Checkpoint(
            epoch=_int(body["epoch"]),
            pos=(_int(body["pos"][0]), _int(body["pos"][1])),  # type: ignore[index]
            files={_int(n): (None if end is None else _int(end)) for n, end in body["files"]},  # type: ignore[attr-defined]
            queues=body["queues"],  # type: ignore[arg-type]
            subscriptions=[_subscription(s) for s in body["subs"]],  # type: ignore[attr-defined]
            producers=[_str(p) for p in body["producers"]],  # type: ignore[attr-defined]
        )
    except (KeyError, TypeError, ValueError, IndexError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"malformed content: {exc}") from None


def _body(payload: bytes) -> dict[str, object]:
    """The payload's map, its "queues" read straight into columns (never a million small lists:
    arrays unpack as tuples, which cost half as much to make; the rest is small, made lists)."""
    unpacker = msgpack.Unpacker(raw=False, use_list=False, max_buffer_size=max(len(payload), 1))
    unpacker.feed(payload)
    body: dict[str, object] = {}
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        body[key] = _queues(unpacker) if key == "queues" else _lists(unpacker.unpack())
    if unpacker.tell() != len(payload):
        raise ValueError(f"{len(payload) - unpacker.tell()} bytes after the checkpoint's map")
    return body


def _lists(value: object) -> object:
    return list(map(_lists, value)) if isinstance(value, tuple) else value


def columns(queue: str, ids: list[str], locations: Iterable[Location]) -> Columns:
    """A queue's columns from its ids and their locations (in the same order)."""
    locations = list(locations)
    return (queue, ids, array("q", [loc.file << FILE_SHIFT | loc.offset for loc in locations]),
            array("I", [loc.length for loc in locations]))


# Entries are packed and unpacked this many at a time: each chunk is one C call (a million
# per-message calls were most of a cold open), short enough not to hold the GIL for long.
_CHUNK = 8192
_ID, _FILE, _OFFSET, _LENGTH = (itemgetter(n) for n in range(4))


def _entries(packer: msgpack.Packer, ids: list[str], places: array[int], lengths: array[int]) -> list[bytes]:
    """The queue's [id, file, offset, length] entries packed, without their array's header: each
    chunk is packed as an array and its header cut off, the bytes one packb per entry would give."""
    parts = []
    for start in range(0, len(ids), _CHUNK):
        end = start + _CHUNK
        files = map(rshift, places[start:end], repeat(FILE_SHIFT))
        offsets = map(and_, places[start:end], repeat(MAX_OFFSET))
        chunk = list(zip(ids[start:end], files, offsets, lengths[start:end], strict=True))
        parts.append(packer.pack(chunk)[_array_header_size(len(chunk)):])
    return parts


def _array_header_size(n: int) -> int:
    return 1 if n < 16 else 3 if n < 1 << 16 else 5


def _queues(unpacker: msgpack.Unpacker) -> list[Columns]:
    queues = []
    for _ in range(unpacker.read_array_header()):
        if unpacker.read_array_header() != 2:
            raise ValueError("a queue is not [name, entries]")
        queue = _str(unpacker.unpack())
        queues.append(_columns(queue, unpacker, unpacker.read_array_header()))
    return queues


def _columns(queue: str, unpacker: msgpack.Unpacker, count: int) -> Columns:
    """One queue's `count` [id, file, offset, length] entries as columns. Every step maps a C
    function over a chunk of entries (a million entries are most of a cold open's work)."""
    ids: list[str] = []
    places, lengths = array("q"), array("I")
    while len(ids) < count:
        chunk = list(islice(unpacker, min(_CHUNK, count - len(ids))))
        if len(chunk) < min(_CHUNK, count - len(ids)):
            raise ValueError("the queue's entries end early")
        if set(map(type, chunk)) - {tuple} or set(map(len, chunk)) - {4}:
            raise ValueError("a queue's entries are not arrays of four fields")
        chunk_ids = list(map(_ID, chunk))
        if set(map(type, chunk_ids)) - {str}:
            raise ValueError("a message id is not a string")
        files, offsets, chunk_lengths = (list(map(get, chunk)) for get in (_FILE, _OFFSET, _LENGTH))
        numbers = (files, offsets, chunk_lengths)
        if set(map(type, chain(*numbers))) - {int} or min(chain(*numbers)) < 0:
            raise ValueError("a location holds something other than a non-negative integer")
        if max(files) > MAX_FILE or max(offsets) > MAX_OFFSET or max(chunk_lengths) > MAX_LENGTH:
            raise ValueError("a location is out of range")
        ids += chunk_ids
        places.extend(map(or_, map(lshift, files, repeat(FILE_SHIFT)), offsets))
        lengths.extend(chunk_lengths)
    return queue, ids, places, lengths


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
