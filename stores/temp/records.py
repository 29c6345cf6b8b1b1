"""Temporary store records: pure functions over bytes, no I/O.

A record is one frame of stores/framing.py (crc32c, length, type, payload) whose payload is the
msgpack array [message_id, destination, headers, body, producer_id], as the journal packs a message.
A segment file is records end to end, nothing else: no file header, since a segment is never read
by another process or after a restart (the directory is wiped at start).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from stores.base import StoreCorrupted, StoredMessage
from stores.framing import BadFrame, Frame, decode_frame, encode_frame, exact_message_fields, message_fields

RECORD = 0x54  # "T": the one record type
_TYPES = {RECORD: RECORD}


def encode(message: StoredMessage) -> bytes:
    """One record; TypeError for a message msgpack would store wrongly (framing.message_fields)."""
    payload: bytes = msgpack.packb(message_fields(message), use_bin_type=True)
    return encode_frame(RECORD, payload)


def decode(buf: bytes | memoryview, where: str) -> StoredMessage:
    """The message of the record that is exactly `buf`; StoreCorrupted(where, ...) if `buf` is not
    one whole, intact record of a message (torn, damaged, or of the wrong length)."""
    frame = decode_frame(buf, 0, None, _TYPES)
    if isinstance(frame, BadFrame):
        raise StoreCorrupted(where, frame.reason)
    if frame.end != len(buf):
        raise StoreCorrupted(where, f"record of {frame.end} bytes where {len(buf)} were expected")
    return _message(frame, where)


def _message(frame: Frame, where: str) -> StoredMessage:
    try:
        fields = msgpack.unpackb(frame.payload, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise StoreCorrupted(where, f"undecodable record payload: {exc}") from None
    if not exact_message_fields(fields):
        raise StoreCorrupted(where, "record payload is not a message")
    return StoredMessage(*fields)


@dataclass(slots=True, frozen=True)
class Scan:
    """The intact records at the start of a segment's bytes, and where the first bad one starts."""

    messages: list[tuple[int, StoredMessage]]  # (offset, message)
    bad: int | None  # offset of a torn tail (a write cut short) or damage; None: the bytes end cleanly
    reason: str = ""


def scan(buf: bytes | memoryview) -> Scan:
    """Every intact record from offset 0 up to the first bad one (for checks and tests: the broker
    reads records by location, never by scanning)."""
    messages: list[tuple[int, StoredMessage]] = []
    offset = 0
    while offset < len(buf):
        frame = decode_frame(buf, offset, None, _TYPES)
        if isinstance(frame, BadFrame):
            return Scan(messages, offset, frame.reason)
        try:
            messages.append((offset, _message(frame, f"offset {offset}")))
        except StoreCorrupted as exc:
            return Scan(messages, offset, exc.args[0])
        offset = frame.end
    return Scan(messages, None)
