"""Record framing shared by the journal and the append log: pure functions over bytes, no I/O.

Both stores frame every record the same way (journal FORMAT.md section 2, appendlog FORMAT.md
"Frame"), after LevelDB's log format (checksum + length + type + data):

    frame   := crc:u32  length:u32  type:u8  payload      (little-endian, 9-byte header)
    crc     := CRC-32C (Castagnoli) of  type:u8 || payload
    length  <= MAX_PAYLOAD

The crc and length fields are not covered: a damaged length makes the covered range wrong,
which the CRC then catches. What a type byte means, and which types exist, is each store's;
this module only tells whole, intact frames from everything else and never raises on bad input.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import crc32c
import msgpack

from stores.base import StoreCorrupted, StoredMessage

HEADER = struct.Struct("<IIB")  # crc32c, payload length, type
HEADER_SIZE = HEADER.size  # 9
MAX_PAYLOAD = 256 * 1024 * 1024  # bounds what a length field may make a reader read

# CRC-32C of each possible type byte: the running value the payload's CRC continues from, so the
# covered range `type || payload` is never copied into one buffer (recovery's hot loop).
_TYPE_CRC = tuple(crc32c.crc32c(bytes((t,))) for t in range(256))

Types = Mapping[int, int]  # type byte -> the value a Frame carries (e.g. a store's IntEnum member)


class Fault(enum.Enum):
    """Why a frame is not whole and intact; stores that word their errors differently map these."""

    SHORT_HEADER = "short header"  # fewer than HEADER_SIZE bytes left: end unknown
    TOO_LONG = "too long"  # length field above MAX_PAYLOAD: end not believable
    SHORT_PAYLOAD = "short payload"  # the payload runs past the data: end unknown
    CHECKSUM = "checksum"  # whole, but the CRC does not match
    UNKNOWN_TYPE = "unknown type"  # whole and intact, but not a type the store knows


@dataclass(slots=True, frozen=True)
class Frame:
    type: int
    payload: bytes
    offset: int
    end: int

    @property
    def size(self) -> int:
        """Header plus payload."""
        return self.end - self.offset


@dataclass(slots=True, frozen=True)
class BadFrame:
    offset: int
    reason: str
    end: int | None  # where the frame would end, if its length is believable
    fault: Fault


def encode_frame(rtype: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"record of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    return HEADER.pack(crc32c.crc32c(payload, _TYPE_CRC[rtype]), len(payload), rtype) + payload


def frame_size(buf: bytes | memoryview, offset: int = 0) -> int | None:
    """The size (header + payload) the header at `offset` announces; None if the header is cut."""
    if len(buf) - offset < HEADER_SIZE:
        return None
    length: int = HEADER.unpack_from(buf, offset)[1]
    return HEADER_SIZE + length


def decode_frame(
    buf: bytes | memoryview, offset: int, limit: int | None = None, types: Types | None = None
) -> Frame | BadFrame:
    """The frame at `offset`, reading nothing at or past `limit` (default: end of buffer).

    With `types`, a type byte not in it is a BadFrame and a Frame's type is the mapped value.
    """
    end_of_data = len(buf) if limit is None else min(limit, len(buf))
    if offset + HEADER_SIZE > end_of_data:
        reason = f"{end_of_data - offset} bytes, shorter than a record header"
        return BadFrame(offset, reason, None, Fault.SHORT_HEADER)
    crc, length, rtype = HEADER.unpack_from(buf, offset)
    end = offset + HEADER_SIZE + length
    if length > MAX_PAYLOAD or end > end_of_data:
        fault = Fault.TOO_LONG if length > MAX_PAYLOAD else Fault.SHORT_PAYLOAD
        return BadFrame(offset, f"record length {length} runs past the end of the data", None, fault)
    payload = bytes(buf[offset + HEADER_SIZE : end])
    if crc32c.crc32c(payload, _TYPE_CRC[rtype]) != crc:
        return BadFrame(offset, "checksum mismatch", end, Fault.CHECKSUM)
    if types is None:
        return Frame(rtype, payload, offset, end)
    kind = types.get(rtype)
    if kind is None:
        return BadFrame(offset, f"unknown record type {rtype}", end, Fault.UNKNOWN_TYPE)
    return Frame(kind, payload, offset, end)


def intact_payload(buf: bytes | memoryview, length: int, rtype: int) -> memoryview | None:
    """The payload of the frame at the start of `buf`, without a copy, if that frame is whole and
    intact, of type `rtype` and exactly `length` bytes long (what a store's index located); None
    otherwise, and the caller words the fault through `decode_frame`. The read path's fast check."""
    if len(buf) < length or length < HEADER_SIZE:
        return None
    crc, size, kind = HEADER.unpack_from(buf, 0)
    if kind != rtype or HEADER_SIZE + size != length:
        return None
    payload = memoryview(buf)[HEADER_SIZE:length]
    return payload if crc32c.crc32c(payload, _TYPE_CRC[rtype]) == crc else None


def payload_at(buf: bytes | memoryview, offset: int, limit: int, rtype: int) -> memoryview | None:
    """The payload of the frame at `offset`, without a copy, if it is whole before `limit`, intact
    and of type `rtype`; None otherwise (`decode_frame` then says what it is). Replay's hot loop."""
    if offset + HEADER_SIZE > limit or limit > len(buf):
        return None
    crc, size, kind = HEADER.unpack_from(buf, offset)
    end = offset + HEADER_SIZE + size
    if kind != rtype or end > limit:
        return None
    payload = memoryview(buf)[offset + HEADER_SIZE : end]
    return payload if crc32c.crc32c(payload, _TYPE_CRC[rtype]) == crc else None


def iter_frames(
    buf: bytes | memoryview, start: int, limit: int, types: Types | None = None
) -> Iterator[Frame | BadFrame]:
    """Frames from `start` up to `limit`; stops after the first bad one."""
    offset = start
    while offset < limit:
        frame = decode_frame(buf, offset, limit, types)
        yield frame
        if isinstance(frame, BadFrame):
            return
        offset = frame.end


def is_torn_tail(
    buf: bytes | memoryview, bad: BadFrame, limit: int | None = None, types: Types | None = None
) -> bool:
    """The append log's rule: a bad frame is a torn tail unless an intact frame starts where it ends.

    A crash can only damage what was written since the last sync, i.e. the end of the log; an
    intact record right after a bad one means damage in the middle: corruption.
    """
    if bad.end is None:
        return True
    return not isinstance(decode_frame(buf, bad.end, limit, types), Frame)


def next_frame_after(buf: bytes | memoryview, offset: int, types: Types) -> int | None:
    """The journal's rule: offset of the first intact frame starting anywhere after `offset`.

    Stricter than `is_torn_tail` (it does not trust the bad frame's length): None means nothing
    after `offset` is an intact record, so the bad frame may be a torn tail.
    """
    for candidate in range(offset + 1, len(buf) - HEADER_SIZE + 1):
        if buf[candidate + HEADER_SIZE - 1] not in types:
            continue  # cheap filter before a CRC over up to MAX_PAYLOAD bytes
        if isinstance(decode_frame(buf, candidate, None, types), Frame):
            return candidate
    return None


def unpack_msgpack(data: bytes, where: str, what: str = "record payload") -> Any:
    """One msgpack value; anything undecodable is StoreCorrupted(where, "undecodable <what>: ...")."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise StoreCorrupted(where, f"undecodable {what}: {exc}") from None


def message_fields(message: StoredMessage) -> list[Any]:
    """The [message_id, destination, headers, body, producer_id] array both stores pack; TypeError
    for a message msgpack would store wrongly (non-bytes body, non-str headers)."""
    if not isinstance(message.body, bytes | bytearray):
        raise TypeError(f"message body must be bytes, not {type(message.body).__name__}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in message.headers.items()):
        raise TypeError("message headers must map str to str")
    body = bytes(message.body)
    return [message.message_id, message.destination, message.headers, body, message.producer_id]


def is_message_fields(fields: list[Any]) -> bool:
    """Whether a decoded [message_id, destination, headers, body, producer_id] array has the types
    a StoredMessage needs: str, str, {str: str}, bytes, str or None. The length is the caller's check."""
    message_id, destination, headers, body, producer_id = fields
    return (
        isinstance(message_id, str)
        and isinstance(destination, str)
        and isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        and isinstance(body, bytes)
        and (producer_id is None or isinstance(producer_id, str))
    )


def exact_message_fields(fields: Any) -> bool:
    """Whether `fields` is a message's [message_id, destination, headers, body, producer_id] as
    msgpack decodes it: `is_message_fields` with the length checked, in exact types and with the
    headers joined in C (a TypeError names a non-str) rather than tested one by one in Python,
    which cost as much as the rest of a message's decoding. The read and replay paths' check."""
    if type(fields) is not list or len(fields) != 5:
        return False
    message_id, destination, headers, body, producer_id = fields
    if not (type(message_id) is str and type(destination) is str and type(body) is bytes
            and type(headers) is dict and (producer_id is None or type(producer_id) is str)):
        return False
    try:
        "".join(headers)
        "".join(headers.values())
    except TypeError:
        return False
    return True
