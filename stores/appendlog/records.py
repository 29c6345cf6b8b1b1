"""Pure record framing and payload codecs of the append log (grammar in FORMAT.md).

Frames are those of `stores.framing` (shared with the journal): crc32c (u32 LE) | length (u32 LE)
| type (u8) | payload, the CRC covering the type byte and the payload. Payloads are msgpack arrays.
No I/O: bytes in, values out; a decoder that meets something it does not recognise raises
`StoreCorrupted`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import msgpack

from stores import framing
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    Op,
    PutSubscription,
    RemoveMessage,
    StoreCorrupted,
    StoredMessage,
)
from stores.framing import HEADER_SIZE as HEADER_SIZE  # re-exported: the framing is part of this API
from stores.framing import MAX_PAYLOAD as MAX_PAYLOAD
from stores.framing import BadFrame as BadFrame
from stores.framing import Frame as Frame
from stores.framing import encode_frame as encode_frame
from stores.framing import is_message_fields, message_fields, unpack_msgpack
from stores.reads import Key

FORMAT_VERSION = 1


class RecordType(enum.IntEnum):
    SEGMENT = 1  # first record of every segment: number, epoch, seals of earlier segments
    BATCH = 2  # one write(ops) call
    SNAP_BEGIN = 3  # compaction snapshot: begins, names its first segment (the base)
    SNAP_MESSAGES = 4  # snapshot chunk: one queue's messages, in order
    SNAP_SUBSCRIPTIONS = 5
    SNAP_PRODUCERS = 6
    SNAP_END = 7  # snapshot complete: base and number of chunks


_TYPES: dict[int, int] = {t.value: t for t in RecordType}  # a Frame's type is a RecordType member


def decode_frame(buf: bytes | memoryview, offset: int, limit: int | None = None) -> Frame | BadFrame:
    """Decode the frame at `offset`, reading nothing at or past `limit` (default: end of buffer)."""
    return framing.decode_frame(buf, offset, limit, _TYPES)


def is_torn_tail(buf: bytes | memoryview, bad: BadFrame, limit: int | None = None) -> bool:
    """A bad frame is a torn tail unless an intact record follows it (see `framing.is_torn_tail`)."""
    return framing.is_torn_tail(buf, bad, limit, _TYPES)


def next_frame_after(buf: bytes | memoryview, offset: int) -> int | None:
    """Offset of the first intact record starting anywhere after `offset` (framing.next_frame_after)."""
    return framing.next_frame_after(buf, offset, _TYPES)


def iter_frames(buf: bytes | memoryview, start: int, limit: int) -> Iterator[Frame | BadFrame]:
    """Frames from `start` up to `limit`; stops after the first bad one."""
    return framing.iter_frames(buf, start, limit, _TYPES)


# -- payloads --------------------------------------------------------------------------------


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _expect(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise StoreCorrupted(where, f"malformed {what}")


@dataclass(slots=True, frozen=True)
class SegmentHeader:
    number: int
    epoch: int
    sealed: dict[int, int]  # earlier segment number -> end offset nothing past which is honoured


def encode_segment_header(number: int, epoch: int, sealed: Mapping[int, int]) -> bytes:
    return _pack([FORMAT_VERSION, number, epoch, sorted(sealed.items())])


def decode_segment_header(payload: bytes, where: str) -> SegmentHeader:
    fields = unpack_msgpack(payload, where)
    _expect(isinstance(fields, list) and len(fields) == 4, where, "segment header")
    version, number, epoch, sealed = fields
    if version != FORMAT_VERSION:
        raise StoreCorrupted(where, f"segment format version {version!r} is not supported")
    _expect(isinstance(number, int) and isinstance(epoch, int) and isinstance(sealed, list), where, "header")
    seals: dict[int, int] = {}
    for pair in sealed:
        _expect(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) for v in pair), where, "seal"
        )
        seals[pair[0]] = pair[1]
    return SegmentHeader(number, epoch, seals)


def _message(fields: Any, where: str) -> StoredMessage:
    _expect(isinstance(fields, list) and len(fields) == 5, where, "message")
    _expect(is_message_fields(fields), where, "message fields")
    return StoredMessage(*fields)


def _subscription_fields(sub: DurableSubscription) -> list[Any]:
    return sub.fields()


def _subscription(fields: Any, where: str) -> DurableSubscription:
    _expect(isinstance(fields, list) and len(fields) in (5, 6), where, "subscription")
    _expect(DurableSubscription.valid_fields(fields), where, "subscription fields")
    return DurableSubscription(*fields)


def encode_op(op: Op) -> bytes:
    if isinstance(op, AddMessage):
        return _pack(["A", op.queue, message_fields(op.message)])
    if isinstance(op, RemoveMessage):
        return _pack(["R", op.queue, op.message_id])
    if isinstance(op, PutSubscription):
        return _pack(["P", _subscription_fields(op.subscription)])
    if isinstance(op, DropSubscription):
        return _pack(["D", op.key])
    raise TypeError(f"unknown store operation {op!r}")


def _array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def encode_batch(ops: Sequence[Op]) -> bytes:
    """The BATCH payload: a msgpack array of ops, built from the ops' own encodings."""
    return _array_header(len(ops)) + b"".join(encode_op(op) for op in ops)


def decode_batch(payload: bytes, where: str, wanted: Set[Key] | None = None) -> list[Op]:
    """The ops of a BATCH; with `wanted`, only the adds of those messages (a read's)."""
    items = unpack_msgpack(payload, where)
    _expect(isinstance(items, list), where, "batch")
    if wanted is not None:
        items = [item for item in items if isinstance(item, list) and len(item) == 3 and item[0] == "A"
                 and isinstance(item[1], str) and _wanted_id(item[2], item[1], wanted)]
    return [_op(item, where) for item in items]


def _op_list(payload: bytes | memoryview) -> list[Any] | None:
    """A BATCH payload unpacked to its list of ops, or None if it is not one."""
    try:
        items = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return items if type(items) is list else None


def replay_items(payload: bytes | memoryview) -> list[list[Any]] | None:
    """A BATCH's op arrays for replay, if every op is an ADD or a REMOVE that `decode_batch` would
    accept; None otherwise (a subscription op, damage: `decode_batch` then decodes or words it).
    Recovery's hot loop: one unpack, exact type checks, no op or message objects built."""
    items = _op_list(payload)
    if items is None:
        return None
    for item in items:
        if type(item) is not list or len(item) != 3 or type(item[1]) is not str:
            return None
        if item[0] == "A":
            if not framing.exact_message_fields(item[2]):
                return None
        elif item[0] != "R" or type(item[2]) is not str:
            return None
    return items


def _op(item: Any, where: str) -> Op:
    _expect(isinstance(item, list) and len(item) >= 2, where, "operation")
    tag = item[0]
    if tag == "A" and len(item) == 3 and isinstance(item[1], str):
        return AddMessage(item[1], _message(item[2], where))
    if tag == "R" and len(item) == 3 and isinstance(item[1], str) and isinstance(item[2], str):
        return RemoveMessage(item[1], item[2])
    if tag == "P" and len(item) == 2:
        return PutSubscription(_subscription(item[1], where))
    if tag == "D" and len(item) == 2 and isinstance(item[1], str):
        return DropSubscription(item[1])
    raise StoreCorrupted(where, f"unknown operation {str(tag)[:20]!r}")


# -- compaction snapshot ---------------------------------------------------------------------


def encode_snap_begin(base: int, keep: int | None = None) -> bytes:
    """[base]: the snapshot replaces every segment before it. [base, keep]: only the segments before
    `keep` (< base); those from `keep` on stay and are replayed under it (FORMAT.md, "Compaction")."""
    return _pack([base] if keep is None else [base, keep])


def decode_snap_begin(payload: bytes, where: str) -> tuple[int, int | None]:
    fields = unpack_msgpack(payload, where)
    _expect(isinstance(fields, list) and len(fields) in (1, 2) and all(type(f) is int for f in fields),
            where, "snapshot marker")
    if len(fields) == 1:
        return fields[0], None
    base, keep = fields
    _expect(0 < keep < base, where, "snapshot marker (kept segments)")
    return base, keep


def encode_snap_end(base: int, chunks: int) -> bytes:
    return _pack([base, chunks])


def decode_snap_marker(payload: bytes, where: str, size: int) -> list[int]:
    fields = unpack_msgpack(payload, where)
    _expect(
        isinstance(fields, list) and len(fields) == size and all(isinstance(f, int) for f in fields),
        where,
        "snapshot marker",
    )
    return list(fields)


@dataclass(slots=True, frozen=True)
class Chunk:
    """One snapshot record, and for SNAP_MESSAGES the queue and ids it holds (their new place)."""

    type: RecordType
    payload: bytes
    queue: str = ""
    message_ids: tuple[str, ...] = ()


def snapshot_chunks(
    queues: Mapping[str, Iterable[StoredMessage]],
    subscriptions: Sequence[DurableSubscription],
    producers: Sequence[str],
    chunk_bytes: int,
) -> Iterator[Chunk]:
    """The live state as snapshot records, each holding roughly at most `chunk_bytes`."""
    for queue, messages in queues.items():
        part: list[bytes] = []
        ids: list[str] = []
        size = 0
        for message in messages:
            fields = _pack(message_fields(message))
            if part and size + len(fields) > chunk_bytes:
                yield _messages_chunk(queue, part, ids)
                part, ids, size = [], [], 0
            part.append(fields)
            ids.append(message.message_id)
            size += len(fields)
        if part:
            yield _messages_chunk(queue, part, ids)
    if subscriptions:
        yield Chunk(RecordType.SNAP_SUBSCRIPTIONS, _pack([_subscription_fields(s) for s in subscriptions]))
    for start in range(0, len(producers), 4096):
        yield Chunk(RecordType.SNAP_PRODUCERS, _pack(list(producers[start : start + 4096])))


def _messages_chunk(queue: str, part: list[bytes], ids: list[str]) -> Chunk:
    payload = _pack(queue) + _array_header(len(part)) + b"".join(part)
    return Chunk(RecordType.SNAP_MESSAGES, payload, queue, tuple(ids))


def decode_snap_messages(
    payload: bytes, where: str, wanted: Set[Key] | None = None
) -> tuple[str, list[StoredMessage]]:
    """SNAP_MESSAGES payload: two concatenated msgpack values, the queue name and the message array.
    With `wanted`, only those messages are built (the others' fields are not checked)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=len(payload) + 1)
    unpacker.feed(payload)
    try:
        values = list(unpacker)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise StoreCorrupted(where, f"undecodable snapshot chunk: {exc}") from None
    _expect(len(values) == 2 and isinstance(values[0], str) and isinstance(values[1], list), where, "chunk")
    queue, items = values
    if wanted is not None:
        items = [m for m in items if _wanted_id(m, queue, wanted)]
    return queue, [_message(m, where) for m in items]


def _wanted_id(fields: Any, queue: str, wanted: Set[Key]) -> bool:
    """Message fields whose id (the first field) is wanted in `queue`; malformed ones are wanted,
    so that decoding them reports the damage."""
    if not (isinstance(fields, list) and fields and isinstance(fields[0], str)):
        return True
    return (queue, fields[0]) in wanted


def decode_snap_subscriptions(payload: bytes, where: str) -> list[DurableSubscription]:
    items = unpack_msgpack(payload, where)
    _expect(isinstance(items, list), where, "subscription chunk")
    return [_subscription(item, where) for item in items]


def decode_snap_producers(payload: bytes, where: str) -> list[str]:
    items = unpack_msgpack(payload, where)
    _expect(isinstance(items, list) and all(isinstance(i, str) for i in items), where, "producer chunk")
    return list(items)


# -- reading one record back (Store.read) ----------------------------------------------------


def record_messages(
    data: bytes | memoryview, length: int, where: str, wanted: Set[Key] | None = None
) -> dict[Key, StoredMessage]:
    """The messages a BATCH or SNAP_MESSAGES record holds, by (queue, message id): the append log's
    `stores.reads.Decode`. `data` is the `length` bytes the store's index located the record at.

    The read path's hot loop: an intact BATCH is unpacked in place and only its wanted messages
    built; anything else goes through `checked_messages`, which accepts the same and words faults."""
    if wanted is not None and len(data) > HEADER_SIZE:
        kind = data[HEADER_SIZE - 1]
        payload = framing.intact_payload(data, length, kind)
        found = None
        if payload is not None and kind == RecordType.BATCH:
            found = _wanted_adds(payload, wanted)
        elif payload is not None and kind == RecordType.SNAP_MESSAGES:
            found = _wanted_snapshot(payload, wanted)
        if found is not None:
            return found
    return checked_messages(data, length, where, wanted)


def _wanted_snapshot(payload: memoryview, wanted: Set[Key]) -> dict[Key, StoredMessage] | None:
    """The wanted messages of a SNAP_MESSAGES payload; None if it or a wanted (or unidentifiable)
    message is malformed, as `decode_snap_messages` with `wanted` would find."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=len(payload) + 1)
    unpacker.feed(payload)
    try:
        values = list(unpacker)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if len(values) != 2 or type(values[0]) is not str or type(values[1]) is not list:
        return None
    queue, items = values
    found: dict[Key, StoredMessage] = {}
    for fields in items:
        if not (type(fields) is list and fields and type(fields[0]) is str):
            return None
        key = (queue, fields[0])
        if key in wanted:
            if not framing.exact_message_fields(fields):
                return None
            found[key] = StoredMessage(*fields)
    return found


def _wanted_adds(payload: memoryview, wanted: Set[Key]) -> dict[Key, StoredMessage] | None:
    """The wanted ADDs of a BATCH payload as messages; None if the payload or a wanted (or
    unidentifiable) add is malformed, as `decode_batch` with `wanted` would find."""
    items = _op_list(payload)
    if items is None:
        return None
    found: dict[Key, StoredMessage] = {}
    for item in items:
        if type(item) is not list or len(item) != 3 or item[0] != "A" or type(item[1]) is not str:
            continue
        fields = item[2]
        if not (type(fields) is list and fields and type(fields[0]) is str):
            return None
        key = (item[1], fields[0])
        if key in wanted:
            if not framing.exact_message_fields(fields):
                return None
            found[key] = StoredMessage(*fields)
    return found


def checked_messages(
    data: bytes | memoryview, length: int, where: str, wanted: Set[Key] | None = None
) -> dict[Key, StoredMessage]:
    """`record_messages` through the frame and payload decoders, which word every fault."""
    frame = decode_frame(data, 0)
    if isinstance(frame, BadFrame):
        raise StoreCorrupted(where, f"cannot read a live message's record: {frame.reason}")
    if frame.size != length or frame.type not in (RecordType.BATCH, RecordType.SNAP_MESSAGES):
        raise StoreCorrupted(where, "not the BATCH or SNAP_MESSAGES record the index points at")
    if frame.type is RecordType.SNAP_MESSAGES:
        queue, messages = decode_snap_messages(frame.payload, where, wanted)
        return {(queue, m.message_id): m for m in messages}
    ops = decode_batch(frame.payload, where, wanted)
    return {(op.queue, op.message.message_id): op.message for op in ops if isinstance(op, AddMessage)}
