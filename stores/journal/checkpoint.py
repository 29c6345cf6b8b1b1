"""Checkpoints: the index as of a journal position (FORMAT.md section 3). Encode/decode are pure;
`write` streams the encoding to its file, and `reading` a file to the index it fills: a version 3
checkpoint's queues are built a block at a time as they are read, so a cold open or a standby's
(re)build holds neither the file nor a copy of its columns."""

from __future__ import annotations

import io
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import itemgetter, lshift, or_
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

import crc32c
import msgpack

from stores import ckptframe, fsio
from stores import columns as codec
from stores.base import DurableSubscription
from stores.columns import int_of as _int
from stores.columns import str_of as _str
from stores.entries import (
    FILE_SHIFT,
    MAX_FILE,
    MAX_LENGTH,
    MAX_OFFSET,
    Packed,
    Prefixes,
    QueueEntries,
    Streamed,
)
from stores.journal.index import Columns, Index, Location, Records

MAGIC = b"BMQJCKP3"  # FORMAT.md section 3: queues last, their columns in chunks
MAGIC_V2 = b"BMQJCKP2"  # queues as whole columns: still read, never written
MAGIC_V1 = b"BMQJCKP1"  # queues as [id, file, offset, length] entries: still read, never written
MAGICS = (MAGIC, MAGIC_V2, MAGIC_V1)
_READ = 1 << 16  # bytes a streamed read takes from the file at a time
_MALFORMED = (KeyError, TypeError, ValueError, IndexError, OverflowError, msgpack.UnpackException)
_T = TypeVar("_T")
_HEADER = ckptframe.HEADER  # crc32c of payload, payload length -- little-endian
HEAD_SIZE = ckptframe.HEAD_SIZE


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
    # A version 3 checkpoint being read (`reading`): its queues, one at a time as they are read
    # (`queues` is empty then).
    streamed: Iterator[tuple[str, Streamed]] | None = None

    def loading(self) -> Iterable[tuple[str, Packed | Streamed]]:
        """The queues to load into an index, in order: the columns, or those being read."""
        return self.queues if self.streamed is None else self.streamed


def snapshot(index: Index, epoch: int, pos: tuple[int, int], files: dict[int, int | None]) -> Checkpoint:
    """Take what a checkpoint needs out of `index` (call on the writer thread): each queue's
    blocks as they are now (QueueEntries.frozen: no copy but of its tail), so the encoding can go
    on in another thread while the index changes."""
    return Checkpoint(
        epoch=epoch,
        pos=pos,
        files=dict(files),
        queues=[(q, entries.frozen()) for q, entries in index.queues.items()],
        subscriptions=list(index.subscriptions.values()),
        producers=list(index.producers),
        prefixes=list(index.prefixes.names),
        records=({n: (count, index.held[n]) for n, count in index.live.items()},
                 {at: list(shared) for at, shared in index.shared.items()}),
    )


def _stream(cp: Checkpoint) -> ckptframe.Stream:
    return ckptframe.Stream(MAGIC, _payload(cp))


def encode(cp: Checkpoint) -> bytes:
    stream = _stream(cp)
    payload = b"".join(stream)
    return stream.head() + payload


def write(path: Path, cp: Checkpoint) -> None:
    """Write `cp` to `path` atomically a part at a time: no copy of the whole checkpoint is ever
    in memory (a million messages' columns are 29 MB; joined and framed they were three copies)."""
    stream = _stream(cp)
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
                    packer.pack("subs"), packer.pack([s.fields() for s in cp.subscriptions]),
                    packer.pack("producers"), packer.pack(cp.producers),
                    packer.pack("queues"), packer.pack_array_header(len(cp.queues))])
    for queue, packed in cp.queues:
        yield from codec.encode_queue_blocks(packer, queue, packed, QueueEntries.BLOCK)


@contextmanager
def reading(path: Path) -> Iterator[Checkpoint]:
    """The checkpoint at `path`. A version 3 one is read as its queues are taken (`loading()`,
    within the `with`), its frame checked when they have all been; CheckpointError says what is
    wrong, from the `with` (what was loaded from it meanwhile is to be dropped then)."""
    with open(path, "rb") as file:
        _check_magic(file.read(HEAD_SIZE))
        file.seek(0)
        if file.read(len(MAGIC)) != MAGIC:
            file.seek(0)
            yield decode(file.read())
            return
        file.seek(0)
        with _reading(file) as cp:
            yield cp


def decode(data: bytes) -> Checkpoint:
    """Parse a checkpoint (this version, 2 or 1); CheckpointError says what is wrong."""
    _check_magic(data)
    if data.startswith(MAGIC):
        with _reading(io.BytesIO(data)) as cp:
            cp.queues = [(queue, _materialized(streamed)) for queue, streamed in cp.streamed or ()]
            cp.streamed = None
        return cp
    crc, length = _HEADER.unpack_from(data, len(MAGIC))
    payload = memoryview(data)[HEAD_SIZE:]
    if len(payload) != length:
        raise CheckpointError(f"payload is {len(payload)} bytes, header says {length}")
    if crc32c.crc32c(payload) != crc:
        raise CheckpointError("CRC mismatch")
    try:
        body = _body(payload, version=1 if data.startswith(MAGIC_V1) else 2)
        prefixes, queues = cast("tuple[list[str], list[Columns]]", body["queues"])
        return _checkpoint(body, prefixes, queues, None if data.startswith(MAGIC_V1) else _records(body))
    except _MALFORMED as exc:
        raise CheckpointError(f"malformed content: {exc}") from None


def _check_magic(data: bytes) -> None:
    if len(data) < HEAD_SIZE or not data.startswith(MAGICS):
        if data[:7] == MAGIC[:7]:
            raise CheckpointError(f"checkpoint version {data[7:8].decode('ascii', 'replace')} is not one "
                                  "this broker reads (1, 2 and 3): a newer broker wrote it")
        raise CheckpointError("bad magic")


def _checkpoint(body: dict[str, object], prefixes: list[str], queues: list[Columns],
                records: Records | None) -> Checkpoint:
    return Checkpoint(
        epoch=_int(body["epoch"]),
        pos=(_int(body["pos"][0]), _int(body["pos"][1])),  # type: ignore[index]
        files={_int(n): (None if end is None else _int(end)) for n, end in body["files"]},  # type: ignore[attr-defined]
        queues=queues,
        subscriptions=[_subscription(s) for s in body["subs"]],  # type: ignore[attr-defined]
        producers=[_str(p) for p in body["producers"]],  # type: ignore[attr-defined]
        prefixes=prefixes,
        records=records,
    )


# Version 3: read as a stream -------------------------------------------------------------------
@contextmanager
def _reading(file: BinaryIO) -> Iterator[Checkpoint]:
    """A version 3 checkpoint from `file`: everything but its queues now, the queues as they are
    taken; then the rest of the file, its length and CRC checked (CheckpointError)."""
    try:
        _, source = ckptframe.open_frame(file, (MAGIC,))
    except ckptframe.FrameError as exc:
        raise CheckpointError(str(exc)) from None
    unpacker = _unpacker(source, use_list=False)
    try:
        cp = _guarded(lambda: _head(unpacker))
        yield cp
        for _ in cp.loading():  # queues not taken: read (and checked) all the same
            pass
    except CheckpointError:
        _frame_checked(source)  # a damaged frame is what to report, not what it garbled
        raise
    _frame_checked(source)
    if unpacker.tell() != source.length:
        raise CheckpointError(f"{source.length - unpacker.tell()} bytes after the checkpoint's map")


def _unpacker(source: ckptframe.Reader, use_list: bool) -> msgpack.Unpacker:
    size = max(source.length, 1)  # its buffer grows only to the largest object (a few MB at most)
    return msgpack.Unpacker(source, raw=False, use_list=use_list, read_size=min(_READ, size),
                            max_buffer_size=size)


def _frame_checked(source: ckptframe.Reader) -> None:
    try:
        source.finish()
    except ckptframe.FrameError as exc:
        raise CheckpointError(str(exc)) from None


def _head(unpacker: msgpack.Unpacker) -> Checkpoint:
    """Every field before "queues", which must be the last; the queues as a stream of them."""
    body: dict[str, object] = {}
    prefixes: list[str] | None = None
    fields = unpacker.read_map_header()
    for n in range(fields):
        key = unpacker.unpack()
        if key == "queues":
            if n != fields - 1:
                raise ValueError("the queues are not the checkpoint's last field")
            break
        if key == "prefixes":
            prefixes = codec.prefix_table(unpacker.unpack())
        else:
            body[key] = _lists(unpacker.unpack())
    else:
        raise ValueError("the checkpoint has no queues")
    if prefixes is None:
        raise ValueError("the queues come before the prefixes")
    cp = _checkpoint(body, prefixes, [], _records(body))
    cp.streamed = _streamed(codec.read_queue_blocks(unpacker, Prefixes(prefixes)))
    return cp


def _streamed(queues: Iterator[tuple[str, Streamed]]) -> Iterator[tuple[str, Streamed]]:
    """The queues and their chunks, whatever their reading finds wrong raised as CheckpointError."""
    for queue, streamed in _each(queues):
        yield queue, streamed._replace(chunks=_each(streamed.chunks))


def _each(items: Iterator[_T]) -> Iterator[_T]:
    while (item := _guarded(lambda: next(items, None))) is not None:
        yield item


def _guarded(read: Callable[[], _T]) -> _T:
    try:
        return read()
    except CheckpointError:
        raise
    except _MALFORMED as exc:
        raise CheckpointError(f"malformed content: {exc}") from None


def _materialized(streamed: Streamed) -> Packed:
    keys, places, lengths = array("q"), array("q"), array("I")
    for chunk_keys, chunk_places, chunk_lengths, _ in streamed.chunks:
        keys.extend(chunk_keys)
        places.extend(chunk_places)
        lengths.extend(chunk_lengths)
    return Packed(keys, places, lengths, streamed.extras)


def leading_fields(path: Path, names: tuple[str, ...]) -> dict[str, object]:
    """The fields `names` of the checkpoint at `path` (its first ones: what a follower checks when
    a new one appears), its whole frame checked a part at a time (CheckpointError)."""
    with open(path, "rb") as file:
        _check_magic(file.read(HEAD_SIZE))
        file.seek(0)
        _, source = ckptframe.open_frame(file, MAGICS)
        unpacker = _unpacker(source, use_list=True)
        fields: dict[str, object] = {}
        try:
            for _ in range(unpacker.read_map_header()):
                key = unpacker.unpack()
                if key in names:
                    fields[key] = unpacker.unpack()
                else:
                    unpacker.skip()
                if len(fields) == len(names):
                    break
        except _MALFORMED as exc:
            _frame_checked(source)
            raise CheckpointError(f"malformed content: {exc}") from None
        _frame_checked(source)
        if len(fields) < len(names):
            raise CheckpointError(f"malformed content: no {', '.join(set(names) - set(fields))}")
        return fields


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
                body[key] = prefixes, codec.decode_queues(unpacker, Prefixes(prefixes))
        elif key == "prefixes" and version == 2:
            prefixes = codec.prefix_table(unpacker.unpack())
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
    return queue, codec.checked(pack_ids(prefixes, ids, places, lengths), prefixes)


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


def _subscription(fields: object) -> DurableSubscription:
    # Five fields, or six with an owner (FORMAT.md section 3).
    if not (isinstance(fields, list) and DurableSubscription.valid_fields(fields)):
        raise ValueError(f"malformed subscription {str(fields)[:200]}")
    return DurableSubscription(*fields)
