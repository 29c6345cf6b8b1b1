"""The record framing the journal and the append log share (stores/framing.py): pure, no files.

The pinned bytes were produced by the stores' own framing code before it moved into
stores/framing.py; they must never change, or existing data directories stop opening.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stores import framing
from stores.appendlog import records as appendlog
from stores.base import AddMessage, RemoveMessage, StoreCorrupted, StoredMessage
from stores.framing import BadFrame, Fault, Frame
from stores.journal import records as journal

PINNED = {  # hex of whole frames: crc32c LE | length LE | type | payload
    "journal empty BATCH": "2bbb8c44010000000290",
    "journal SEAL, empty payload": "52d016a00000000001",
    "journal SEAL": "2e9ae91d190000000183a565706f636803a466696c6502a4656e6473919201cd1000",
    "journal BATCH": "6956ddfa"
    "32000000"
    "02"
    "929701a82f71756575652f61a26d31a82f71756575652f6181a16ba176c4"
    "026869a270319302a82f71756575652f61a26d30",
    "appendlog BATCH abc": "8bf42fa10300000002616263",
    "appendlog SEGMENT": "6fb4d75108000000019401070391920564",
    "appendlog BATCH": "92193a6610000000029193a152a82f71756575652f61a26d30",
}
OPS = [
    AddMessage("/queue/a", StoredMessage("m1", "/queue/a", {"k": "v"}, b"hi", "p1")),
    RemoveMessage("/queue/a", "m0"),
]


def pinned(name: str) -> bytes:
    return bytes.fromhex(PINNED[name])


def test_crc_is_crc32c_of_the_type_byte_then_the_payload() -> None:
    # The CRC-32C check value: crc32c(b"123456789") == 0xE3069283 (RFC 3720 B.4 algorithm).
    frame = framing.encode_frame(ord("1"), b"23456789")
    assert frame == struct.pack("<IIB", 0xE3069283, 8, ord("1")) + b"23456789"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_framing_encodes_the_pinned_bytes(name: str) -> None:
    frame = pinned(name)
    assert framing.encode_frame(frame[8], frame[9:]) == frame


def test_both_stores_still_write_the_pinned_bytes() -> None:
    assert journal.encode_record(journal.BATCH, b"\x90") == pinned("journal empty BATCH")
    assert journal.encode_record(journal.SEAL, b"") == pinned("journal SEAL, empty payload")
    assert journal.encode_seal(journal.Seal(epoch=3, file=2, ends={1: 4096})) == pinned("journal SEAL")
    assert journal.encode_batch(OPS) == pinned("journal BATCH")
    assert appendlog.encode_frame(appendlog.RecordType.BATCH, b"abc") == pinned("appendlog BATCH abc")
    header = appendlog.encode_segment_header(7, 3, {5: 100})
    assert appendlog.encode_frame(appendlog.RecordType.SEGMENT, header) == pinned("appendlog SEGMENT")
    batch = appendlog.encode_batch([RemoveMessage("/queue/a", "m0")])
    assert appendlog.encode_frame(appendlog.RecordType.BATCH, batch) == pinned("appendlog BATCH")


def test_both_stores_read_the_pinned_bytes() -> None:
    record = journal.parse_record(pinned("journal BATCH"), 0)
    assert (record.type, record.offset, record.size) == (journal.BATCH, 0, len(pinned("journal BATCH")))
    assert journal.decode_batch(record.payload) == OPS
    assert journal.decode_seal(journal.parse_record(pinned("journal SEAL"), 0).payload) == journal.Seal(
        3, 2, {1: 4096}
    )
    frame = appendlog.decode_frame(pinned("appendlog SEGMENT"), 0)
    assert isinstance(frame, Frame) and frame.type is appendlog.RecordType.SEGMENT
    assert appendlog.decode_segment_header(frame.payload, "x") == appendlog.SegmentHeader(7, 3, {5: 100})


def test_frames_follow_each_other_and_a_limit_hides_what_is_past_it() -> None:
    a, b = pinned("appendlog BATCH abc"), pinned("appendlog BATCH")
    frames = list(framing.iter_frames(a + b, 0, len(a + b)))
    assert frames == [Frame(2, b"abc", 0, len(a)), Frame(2, b[9:], len(a), len(a + b))]
    assert frames[1].size == len(b)
    assert framing.frame_size(a + b, len(a)) == len(b) and framing.frame_size(b[:8]) is None
    cut = framing.decode_frame(a + b, len(a), limit=len(a + b) - 1)
    assert cut == BadFrame(
        len(a), f"record length {len(b) - 9} runs past the end of the data", None, Fault.SHORT_PAYLOAD
    )


def test_faults_and_believable_ends() -> None:
    frame = pinned("appendlog BATCH abc")  # type 2, payload b"abc"
    assert framing.decode_frame(frame[:5], 0) == BadFrame(
        0, "5 bytes, shorter than a record header", None, Fault.SHORT_HEADER
    )
    huge = frame[:4] + (framing.MAX_PAYLOAD + 1).to_bytes(4, "little") + frame[8:]
    assert framing.decode_frame(huge, 0).fault is Fault.TOO_LONG  # type: ignore[union-attr]
    flipped = frame[:-1] + b"d"
    assert framing.decode_frame(flipped, 0) == BadFrame(0, "checksum mismatch", len(frame), Fault.CHECKSUM)
    assert framing.decode_frame(frame, 0, types={1: 1}) == BadFrame(
        0, "unknown record type 2", len(frame), Fault.UNKNOWN_TYPE
    )
    assert framing.decode_frame(frame, 0, types={2: 20}) == Frame(20, b"abc", 0, len(frame))


def test_journal_wording_of_bad_records_is_unchanged() -> None:
    frame = pinned("journal BATCH")
    cases = {
        frame[:3]: "incomplete header (3 bytes)",
        frame[:8] + b"\x07" + frame[9:]: "unknown record type 7",  # named before the CRC mismatch
        frame[:4]
        + (framing.MAX_PAYLOAD + 1).to_bytes(4, "little")
        + frame[8:]: f"length {framing.MAX_PAYLOAD + 1} exceeds {framing.MAX_PAYLOAD}",
        frame[:20]: "incomplete payload (11 of 50 bytes)",
        frame[:-1] + b"\x00": "CRC mismatch",
    }
    for data, problem in cases.items():
        with pytest.raises(journal.RecordError) as raised:
            journal.parse_record(data, 0)
        assert (raised.value.offset, raised.value.problem) == (0, problem)


def test_the_two_torn_tail_rules() -> None:
    a, b = pinned("appendlog BATCH abc"), pinned("appendlog BATCH")
    damaged_then_intact = a[:-1] + b"X" + b
    bad = framing.decode_frame(damaged_then_intact, 0)
    assert isinstance(bad, BadFrame) and not framing.is_torn_tail(damaged_then_intact, bad)
    assert framing.next_frame_after(damaged_then_intact, 0, {2: 2}) == len(a)
    # A length damaged to point past an intact frame: the append log trusts it, the journal scans.
    long = a[:4] + (len(a) - 9 + 1).to_bytes(4, "little") + a[8:] + b
    bad = framing.decode_frame(long, 0)
    assert isinstance(bad, BadFrame) and bad.end == len(a) + 1 and framing.is_torn_tail(long, bad)
    assert framing.next_frame_after(long, 0, {2: 2}) == len(a)
    assert framing.next_frame_after(a + b"\x00" * 40, 0, {2: 2}) is None


def test_unpack_msgpack_names_where_and_what() -> None:
    assert framing.unpack_msgpack(b"\x92\x01\xa1x", "w") == [1, "x"]
    with pytest.raises(StoreCorrupted, match="undecodable record payload") as raised:
        framing.unpack_msgpack(b"\x92\x01", "log-3.seg@9")
    assert raised.value.where == "log-3.seg@9"
    with pytest.raises(StoreCorrupted, match="undecodable value"):
        framing.unpack_msgpack(b"\xc1", "key", "value")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=200), st.binary(max_size=40))
def test_round_trip_and_garbage_never_raises(rtype: int, payload: bytes, garbage: bytes) -> None:
    frame = framing.encode_frame(rtype, payload)
    assert framing.decode_frame(garbage + frame, len(garbage)) == Frame(
        rtype, payload, len(garbage), len(garbage) + len(frame)
    )
    for offset in range(len(garbage) + 1):
        assert isinstance(framing.decode_frame(garbage, offset, types={1: 1}), Frame | BadFrame)
