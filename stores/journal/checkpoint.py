"""Checkpoints: the index as of a journal position (FORMAT.md section 3). Encode/decode are pure;
`write` streams the encoding to its file."""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, compress, islice, repeat
from operator import itemgetter, lshift, lt, or_
from pathlib import Path
from typing import cast

import crc32c
import msgpack

from stores import fsio
from stores.base import DurableSubscription
from stores.entries import (
    COUNTER_SHIFT,
    DIGITS,
    FILE_SHIFT,
    MAX_FILE,
    MAX_LENGTH,
    MAX_OFFSET,
    MAX_PREFIXES,
    Packed,
    Prefixes,
)
from stores.journal.index import Columns, Index, Location, Records

MAGIC = b"BMQJCKP2"  # FORMAT.md section 3: queues as packed columns
MAGIC_V1 = b"BMQJCKP1"  # queues as [id, file, offset, length] entries: still read, never written
MAGICS = (MAGIC, MAGIC_V1)
_HEADER = struct.Struct("<II")  # crc32c of payload, payload length -- little-endian
HEAD_SIZE = len(MAGIC) + _HEADER.size
MAX_CHECKPOINT = 1 << 32
_BIG_ENDIAN = sys.byteorder == "big"  # columns are little-endian on disk
assert MAX_FILE == (1 << (63 - FILE_SHIFT)) - 1  # what _checked relies on


class CheckpointError(ValueError):
    pass


@dataclass(slots=True)
class Checkpoint:
    epoch: int
    pos: tuple[int, int]  # (data file, offset): every record before it is reflected
    files: dict[int, int | None]  # known data files → honoured end (None: the open file)
    # Per queue in index order: its live messages as packed columns (stores/entries.py), keyed by the
    # id prefixes of `prefixes` (a million entries load as a few C calls, not a million objects).
    queues: list[Columns] = field(default_factory=list)
    subscriptions: list[DurableSubscription] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    # Per data file its live messages and the bytes of their records (Index.live, Index.held), and
    # place -> [live messages, length] of the records holding several (Index.shared); None: not in
    # the file (version 1), worked out on load.
    records: Records | None = None


def snapshot(index: Index, epoch: int, pos: tuple[int, int], files: dict[int, int | None]) -> Checkpoint:
    """Copy what a checkpoint needs out of `index` (call on the writer thread): the columns are
    copied with memcpy, 29 bytes a message, so the encoding can go on while the index changes."""
    return Checkpoint(
        epoch=epoch,
        pos=pos,
        files=dict(files),
        queues=[(q, entries.packed()) for q, entries in index.queues.items()],
        subscriptions=list(index.subscriptions.values()),
        producers=list(index.producers),
        prefixes=list(index.prefixes.names),
        records=({n: (count, index.held[n]) for n, count in index.live.items()},
                 {at: list(shared) for at, shared in index.shared.items()}),
    )


class _Stream:
    """The payload's parts, the CRC and length of those yielded so far."""

    def __init__(self, cp: Checkpoint) -> None:
        self.crc = 0
        self.length = 0
        self._cp = cp

    def __iter__(self) -> Iterator[bytes | memoryview]:
        for part in _payload(self._cp):
            self.crc = crc32c.crc32c(part, self.crc)
            self.length += len(part)
            if self.length >= MAX_CHECKPOINT:
                raise CheckpointError("a checkpoint of 4 GiB or more cannot be framed")
            yield part

    def head(self) -> bytes:
        return MAGIC + _HEADER.pack(self.crc, self.length)


def encode(cp: Checkpoint) -> bytes:
    stream = _Stream(cp)
    payload = b"".join(stream)
    return stream.head() + payload


def write(path: Path, cp: Checkpoint) -> None:
    """Write `cp` to `path` atomically a part at a time: no copy of the whole checkpoint is ever
    in memory (a million messages' columns are 29 MB; joined and framed they were three copies)."""
    stream = _Stream(cp)
    fsio.write_streamed_atomically(path, HEAD_SIZE, stream, stream.head)


def _payload(cp: Checkpoint) -> Iterator[bytes | memoryview]:
    packer = msgpack.Packer(use_bin_type=True)
    files, shared = cp.records if cp.records is not None else ({}, {})
    yield b"".join([packer.pack_map_header(9), packer.pack("epoch"), packer.pack(cp.epoch),
                    packer.pack("pos"), packer.pack(list(cp.pos)),
                    packer.pack("files"), packer.pack([[n, end] for n, end in sorted(cp.files.items())]),
                    packer.pack("prefixes"), packer.pack(cp.prefixes),
                    packer.pack("held"), packer.pack([[n, *held] for n, held in sorted(files.items())]),
                    packer.pack("shared"), packer.pack([[at, *rest] for at, rest in sorted(shared.items())]),
                    packer.pack("queues"), packer.pack_array_header(len(cp.queues))])
    for q, (keys, places, lengths, extras, _) in cp.queues:
        yield packer.pack_array_header(5) + packer.pack(q)
        for column in (keys, places, lengths):
            data = _little(column)
            yield _bin_header(len(data))
            yield data
        yield packer.pack([list(extra) for extra in extras])
    subs = [s.fields() for s in cp.subscriptions]
    yield packer.pack("subs") + packer.pack(subs) + packer.pack("producers") + packer.pack(cp.producers)


def _little(column: array[int]) -> memoryview:
    if _BIG_ENDIAN:
        column = array(column.typecode, column)
        column.byteswap()
    return memoryview(column).cast("B")


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def decode(data: bytes) -> Checkpoint:
    """Parse a checkpoint (this version or version 1); CheckpointError says what is wrong."""
    if len(data) < HEAD_SIZE or not data.startswith(MAGICS):
        if data[:7] == MAGIC[:7]:
            raise CheckpointError(f"checkpoint version {data[7:8].decode('ascii', 'replace')} is not one "
                                  "this broker reads (1 and 2): a newer broker wrote it")
        raise CheckpointError("bad magic")
    crc, length = _HEADER.unpack_from(data, len(MAGIC))
    payload = memoryview(data)[HEAD_SIZE:]
    if len(payload) != length:
        raise CheckpointError(f"payload is {len(payload)} bytes, header says {length}")
    if crc32c.crc32c(payload) != crc:
        raise CheckpointError("CRC mismatch")
    try:
        body = _body(payload, version=1 if data.startswith(MAGIC_V1) else 2)
        prefixes, queues = cast("tuple[list[str], list[Columns]]", body["queues"])
        return Checkpoint(
            epoch=_int(body["epoch"]),
            pos=(_int(body["pos"][0]), _int(body["pos"][1])),  # type: ignore[index]
            files={_int(n): (None if end is None else _int(end)) for n, end in body["files"]},  # type: ignore[attr-defined]
            queues=queues,
            subscriptions=[_subscription(s) for s in body["subs"]],  # type: ignore[attr-defined]
            producers=[_str(p) for p in body["producers"]],  # type: ignore[attr-defined]
            prefixes=prefixes,
            records=None if data.startswith(MAGIC_V1) else _records(body),
        )
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"malformed content: {exc}") from None


def _body(payload: memoryview, version: int) -> dict[str, object]:
    """The payload's map, its "queues" read straight into columns with their prefix table (never
    a million small lists: arrays unpack as tuples; the rest is small, made lists)."""
    unpacker = msgpack.Unpacker(raw=False, use_list=False, max_buffer_size=max(len(payload), 1))
    unpacker.feed(payload)
    body: dict[str, object] = {}
    prefixes: list[str] | None = None
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        if key == "queues":
            if version == 1:
                body[key] = _v1_queues(unpacker)
            elif prefixes is None:
                raise ValueError("the queues come before the prefixes")
            else:
                body[key] = prefixes, _queues(unpacker, Prefixes(prefixes))
        elif key == "prefixes" and version == 2:
            prefixes = _prefixes(unpacker.unpack())
        else:
            body[key] = _lists(unpacker.unpack())
    if unpacker.tell() != len(payload):
        raise ValueError(f"{len(payload) - unpacker.tell()} bytes after the checkpoint's map")
    return body


def _records(body: dict[str, object]) -> Records:
    held = {_int(n): (_int(count), _int(size)) for n, count, size in body["held"]}  # type: ignore[attr-defined]
    shared: dict[int, list[int]] = {}
    for at, count, length in body["shared"]:  # type: ignore[attr-defined]
        shared[_int(at)] = [_int(count), _int(length)]
    return held, shared


def _lists(value: object) -> object:
    return list(map(_lists, value)) if isinstance(value, tuple) else value


def _prefixes(value: object) -> list[str]:
    names = list(value) if isinstance(value, tuple) else None
    if names is None or len(names) > MAX_PREFIXES or set(map(type, names)) - {str}:
        raise ValueError("the prefixes are not a list of strings")
    if len(set(names)) != len(names) or any(name != name.rstrip(DIGITS) for name in names):
        raise ValueError("a prefix is repeated or ends in a digit")
    return names


def _queues(unpacker: msgpack.Unpacker, prefixes: Prefixes) -> list[Columns]:
    queues = []
    for _ in range(unpacker.read_array_header()):
        if unpacker.read_array_header() != 5:
            raise ValueError("a queue is not [name, keys, places, lengths, extras]")
        queue = _str(unpacker.unpack())
        keys, places, lengths = (_column(unpacker.unpack(), code) for code in "qqI")
        extras = [(_int(slot), _str(mid)) for slot, mid in unpacker.unpack()]
        queues.append((queue, _checked(Packed(keys, places, lengths, extras), prefixes)))
    return queues


def _column(value: object, typecode: str) -> array[int]:
    if not isinstance(value, bytes):
        raise ValueError("a column is not binary")
    column = array(typecode)
    if len(value) % column.itemsize:
        raise ValueError(f"a column of {len(value)} bytes is not of {column.itemsize}-byte numbers")
    column.frombytes(value)
    if _BIG_ENDIAN:
        column.byteswap()
    return column


def _checked(packed: Packed, prefixes: Prefixes) -> Packed:
    """Refuse what QueueEntries.of could not take: columns of different lengths, keyed keys out of
    order or of unknown prefixes, extras out of order or repeating an id, places out of range."""
    keys, places, lengths, extras, _ = packed
    if not len(keys) == len(places) == len(lengths):
        raise ValueError("a queue's columns differ in length")
    slots = [slot for slot, _ in extras]
    if slots != sorted(set(slots)) or (slots and slots[-1] >= len(keys)):
        raise ValueError("a queue's extras are out of order or range")
    keyed = keys
    if slots:
        mask = bytearray(b"\x01") * len(keys)
        for slot in slots:
            mask[slot] = 0
        keyed = array("q", compress(keys, mask))
    if keyed and (keyed[0] < 0 or keyed[-1] >> COUNTER_SHIFT >= len(prefixes.names)):
        raise ValueError("a message key is out of range")
    if not all(map(lt, keyed, islice(keyed, 1, None))):
        raise ValueError("a queue's message keys are not increasing")
    ids = [mid for _, mid in extras]
    if len(set(ids)) != len(ids) or any(_keyed(prefixes, keyed, mid) for mid in ids):
        raise ValueError("a message id is repeated in a queue")
    if _negative(places):  # a non-negative 64-bit place is a file below 2**23: MAX_FILE
        raise ValueError("a location is out of range")
    return packed


def _negative(column: array[int]) -> bool:
    """Does a column of 64-bit numbers hold a negative one? (Their sign bytes, in one C call each:
    min() over a million numbers took a tenth of a second of a cold open.)"""
    signs = memoryview(column).cast("B")[0 if _BIG_ENDIAN else 7 :: 8].tobytes()
    return bool(signs.translate(None, _NON_NEGATIVE))


_NON_NEGATIVE = bytes(range(128))


def _keyed(prefixes: Prefixes, keyed: array[int], message_id: str) -> bool:
    key = prefixes.key(message_id)
    if key is None:
        return False
    slot = bisect_left(keyed, key)
    return slot < len(keyed) and keyed[slot] == key


# Version 1 -----------------------------------------------------------------------------------
# Entries are unpacked this many at a time: each chunk is one C call, short enough not to hold
# the GIL for long. A version 1 checkpoint is read once, by the first open after an upgrade,
# which writes this version's (its ids are packed one by one: slower than a version 2 open).
_CHUNK = 8192
_ID, _FILE, _OFFSET, _LENGTH = (itemgetter(n) for n in range(4))


def _v1_queues(unpacker: msgpack.Unpacker) -> tuple[list[str], list[Columns]]:
    prefixes = Prefixes()
    queues = []
    for _ in range(unpacker.read_array_header()):
        if unpacker.read_array_header() != 2:
            raise ValueError("a queue is not [name, entries]")
        queue = _str(unpacker.unpack())
        queues.append(_v1_columns(queue, unpacker, unpacker.read_array_header(), prefixes))
    return prefixes.names, queues


def _v1_columns(queue: str, unpacker: msgpack.Unpacker, count: int, prefixes: Prefixes) -> Columns:
    """One queue's `count` [id, file, offset, length] entries as packed columns."""
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
    return queue, _checked(pack_ids(prefixes, ids, places, lengths), prefixes)


def pack_ids(prefixes: Prefixes, ids: list[str], places: array[int], lengths: array[int]) -> Packed:
    """Columns of messages given by id, in store order (as QueueEntries.add would key them)."""
    keys = array("q")
    extras: list[tuple[int, str]] = []
    top = -1
    for slot, message_id in enumerate(ids):
        key = prefixes.key(message_id, add=True)
        if key is not None and key > top:
            top = key
        else:
            extras.append((slot, message_id))
        keys.append(top)
    return Packed(keys, places, lengths, extras)


def columns(prefixes: Prefixes, queue: str, ids: list[str], locations: Iterable[Location]) -> Columns:
    """A queue's columns from its ids and their locations (in the same order)."""
    locations = list(locations)
    places = array("q", [loc.file << FILE_SHIFT | loc.offset for loc in locations])
    return queue, pack_ids(prefixes, ids, places, array("I", [loc.length for loc in locations]))


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
