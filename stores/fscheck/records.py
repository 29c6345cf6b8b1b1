"""The numbered, checksummed records of the handover check (pure functions over bytes).

A record, all integers big-endian:

    0  4  magic b"BQFR"
    4  8  sequence number (1, 2, 3, ...)
    12 4  payload length (<= MAX_PAYLOAD)
    16 .  payload: bytes derived from the sequence number, so content is checkable too
    .  4  CRC-32 (zlib) of everything before it

Lengths vary with the number so that some records cross page boundaries: a holder killed in the
middle of a write can leave a torn last record, which the reader must tell from a good one.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

MAGIC = b"BQFR"
MAX_PAYLOAD = 16 * 1024
_HEAD = struct.Struct(">4sQI")
_CRC = struct.Struct(">I")


def payload(seq: int) -> bytes:
    """A deterministic payload of 100 bytes to about 12 KiB for record `seq`."""
    seed = hashlib.sha256(b"%d" % seq).digest()
    length = 100 + (int.from_bytes(seed[:2], "big") % 12_000)
    return (seed * (length // len(seed) + 1))[:length]


def encode(seq: int) -> bytes:
    body = payload(seq)
    head = _HEAD.pack(MAGIC, seq, len(body)) + body
    return head + _CRC.pack(zlib.crc32(head))


@dataclass(frozen=True)
class Scan:
    """What a reader found: the numbers of the good records in order, and what ended the scan."""

    good: list[int]
    end: str  # "clean end" or why the scan stopped
    offset: int  # where the scan stopped


def scan(data: bytes) -> Scan:
    """Read records from the start until the data ends or a record is damaged or out of order."""
    good: list[int] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEAD.size:
            return Scan(good, f"{len(data) - offset} bytes of a torn record header", offset)
        magic, seq, length = _HEAD.unpack_from(data, offset)
        if magic != MAGIC or length > MAX_PAYLOAD:
            return Scan(good, "bytes that are not a record header", offset)
        end = offset + _HEAD.size + length + _CRC.size
        if end > len(data):
            return Scan(good, f"a torn record ({len(data) - offset} of {end - offset} bytes)", offset)
        (crc,) = _CRC.unpack_from(data, end - _CRC.size)
        if crc != zlib.crc32(data[offset : end - _CRC.size]):
            return Scan(good, f"record {seq} fails its checksum", offset)
        if seq != len(good) + 1:
            return Scan(good, f"record {seq} found where record {len(good) + 1} was expected", offset)
        if data[offset + _HEAD.size : end - _CRC.size] != payload(seq):
            return Scan(good, f"record {seq} has the wrong content", offset)
        good.append(seq)
        offset = end
    return Scan(good, "clean end", offset)
