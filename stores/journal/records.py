"""Journal records: SEAL and BATCH over the shared framing of stores/framing.py (FORMAT.md section 2).

Pure encode/decode over bytes: no files, no asyncio.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass
from typing import TypeGuard

import msgpack

from stores import framing
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    Op,
    PutSubscription,
    RemoveMessage,
    StoredMessage,
)
from stores.framing import HEADER, HEADER_SIZE, MAX_PAYLOAD, BadFrame, Fault

SEAL = 1
BATCH = 2
TYPES = {SEAL: SEAL, BATCH: BATCH}

_ADD, _REMOVE, _PUT_SUB, _DROP_SUB, _MOVE = 1, 2, 3, 4, 5
_packers = threading.local()  # encode_batch's msgpack.Packer of each thread


class RecordError(ValueError):
    """A record (or its payload) is not well formed; `offset` is where it starts."""

    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(f"@{offset}: {problem}")
        self.offset = offset
        self.problem = problem


@dataclass(slots=True, frozen=True)
class Move:
    """Compaction's copy of a live message: replay relocates it without changing its place."""

    queue: str
    message: StoredMessage


JournalOp = Op | Move


@dataclass(slots=True, frozen=True)
class Seal:
    epoch: int
    file: int
    ends: dict[int, int]


# A record is a frame of stores/framing.py: offset, type, payload, end, size (header + payload).
Record = framing.Frame


def encode_record(rtype: int, payload: bytes) -> bytes:
    return framing.encode_frame(rtype, payload)


def parse_record(buf: bytes | memoryview, offset: int) -> Record:
    """The record starting at `offset` in `buf`; RecordError if incomplete, damaged or unknown."""
    record = framing.decode_frame(buf, offset, None, TYPES)
    if isinstance(record, BadFrame):
        raise RecordError(offset, _problem(buf, record))
    return record


def _problem(buf: bytes | memoryview, bad: BadFrame) -> str:
    """The journal's wording of a bad frame; an unknown type byte is named before any other fault."""
    if bad.fault is Fault.SHORT_HEADER:
        return f"incomplete header ({len(buf) - bad.offset} bytes)"
    _, length, rtype = HEADER.unpack_from(buf, bad.offset)
    if rtype not in TYPES:
        return f"unknown record type {rtype}"
    if bad.fault is Fault.TOO_LONG:
        return f"length {length} exceeds {MAX_PAYLOAD}"
    if bad.fault is Fault.SHORT_PAYLOAD:
        return f"incomplete payload ({len(buf) - bad.offset - HEADER_SIZE} of {length} bytes)"
    return "CRC mismatch"


def iter_records(buf: bytes | memoryview, start: int, end: int) -> Iterator[Record]:
    """Records in buf[start:end]; raises RecordError at the first bad one."""
    view = memoryview(buf)[:end]
    for record in framing.iter_frames(view, start, end, TYPES):
        if isinstance(record, BadFrame):
            raise RecordError(record.offset, _problem(view, record))
        yield record


def valid_record_after(buf: bytes | memoryview, offset: int) -> int | None:
    """Offset of the first well-formed record starting after `offset`, if any (torn-tail test)."""
    return framing.next_frame_after(buf, offset, TYPES)


# Payloads -----------------------------------------------------------------------------------


def _pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(payload: bytes | memoryview) -> object:
    return msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True)


def encode_seal(seal: Seal) -> bytes:
    ends = [[n, end] for n, end in sorted(seal.ends.items())]
    return encode_record(SEAL, _pack({"epoch": seal.epoch, "file": seal.file, "ends": ends}))


def decode_seal(payload: bytes) -> Seal:
    data = _unpack(payload)
    if not isinstance(data, dict):
        raise ValueError("SEAL payload is not a map")
    epoch, file, ends = data.get("epoch"), data.get("file"), data.get("ends")
    if not (_is_int(epoch) and _is_int(file) and isinstance(ends, list)):
        raise ValueError("SEAL lacks epoch, file or ends")
    result: dict[int, int] = {}
    for pair in ends:
        if not (isinstance(pair, list) and len(pair) == 2 and _is_int(pair[0]) and _is_int(pair[1])):
            raise ValueError(f"SEAL end entry {pair!r} is not [file, end]")
        result[pair[0]] = pair[1]
    return Seal(epoch, file, result)


def _message_fields(queue: str, m: StoredMessage) -> list[object]:
    return [queue, m.message_id, m.destination, dict(m.headers), bytes(m.body), m.producer_id]


def _encode_op(op: JournalOp) -> list[object]:
    if isinstance(op, AddMessage):
        return [_ADD, *_message_fields(op.queue, op.message)]
    if isinstance(op, RemoveMessage):
        return [_REMOVE, op.queue, op.message_id]
    if isinstance(op, PutSubscription):
        return [_PUT_SUB, *op.subscription.fields()]
    if isinstance(op, DropSubscription):
        return [_DROP_SUB, op.key]
    if isinstance(op, Move):
        return [_MOVE, *_message_fields(op.queue, op.message)]
    raise TypeError(f"not a store op: {op!r}")


def encode_batch(ops: Sequence[JournalOp]) -> bytes:
    """One BATCH record holding every op: the unit of atomicity (FORMAT.md section 2).

    Once per SEND, on the event loop: a Packer kept per thread (msgpack.packb makes one per call,
    half its cost) and the framing called directly. Per thread, as compaction encodes on the writer.
    """
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return framing.encode_frame(BATCH, packer.pack([_encode_op(op) for op in ops]))


def decode_batch(payload: bytes) -> list[JournalOp]:
    data = _unpack(payload)
    if not isinstance(data, list):
        raise ValueError("BATCH payload is not an array")
    return [_decode_op(item) for item in data]


def decode_messages(payload: bytes, wanted: Set[tuple[str, str]]) -> list[JournalOp]:
    """The ADD and MOVE ops of a BATCH whose (queue, message id) is in `wanted`, each checked as
    `decode_batch` checks it; the other ops are not decoded (their record's CRC was checked)."""
    data = _unpack(payload)
    if not isinstance(data, list):
        raise ValueError("BATCH payload is not an array")
    return [_decode_op(item) for item in data
            if isinstance(item, list) and len(item) == 7 and item[0] in (_ADD, _MOVE)
            and isinstance(item[1], str) and isinstance(item[2], str) and (item[1], item[2]) in wanted]


def wanted_messages(
    payload: bytes | memoryview, wanted: Set[tuple[str, str]]
) -> dict[tuple[str, str], StoredMessage] | None:
    """The messages of the ADD and MOVE ops in a BATCH payload whose (queue, message id) is in
    `wanted`, by that key; None if the payload or a wanted op is malformed (`decode_messages` then
    says how). The read path's: one unpack in place, exact type checks, no op objects."""
    try:
        items = _unpack(payload)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if type(items) is not list:
        return None
    found: dict[tuple[str, str], StoredMessage] = {}
    for item in items:
        if type(item) is not list or len(item) != 7 or not (item[0] == _ADD or item[0] == _MOVE):
            continue
        _, queue, message_id, destination, headers, body, producer_id = item  # checked below
        if type(queue) is not str or type(message_id) is not str or (queue, message_id) not in wanted:
            continue
        if not framing.exact_message_fields(item[2:]):
            return None
        found[(queue, message_id)] = StoredMessage(message_id, destination, headers, body, producer_id)
    return found


def _decode_op(item: object) -> JournalOp:
    if not isinstance(item, list) or not item:
        raise ValueError(f"op {item!r} is not a non-empty array")
    code, args = item[0], item[1:]
    if code in (_ADD, _MOVE) and len(args) == 6:
        queue, message_id, destination, headers, body, producer_id = args
        _require_str(queue, message_id, destination)
        if not (isinstance(body, bytes) and _is_str_map(headers)):
            raise ValueError("message body must be bin and headers a map of str")
        if producer_id is not None:
            _require_str(producer_id)
        message = StoredMessage(message_id, destination, headers, body, producer_id)
        return AddMessage(queue, message) if code == _ADD else Move(queue, message)
    if code == _REMOVE and len(args) == 2:
        _require_str(*args)
        return RemoveMessage(args[0], args[1])
    if code == _PUT_SUB and DurableSubscription.valid_fields(args):  # 5 fields, or 6 with an owner
        return PutSubscription(DurableSubscription(*args))
    if code == _DROP_SUB and len(args) == 1:
        _require_str(args[0])
        return DropSubscription(args[0])
    raise ValueError(f"unknown op code {code!r} with {len(args)} fields")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_str_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _require_str(*values: object) -> None:
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
