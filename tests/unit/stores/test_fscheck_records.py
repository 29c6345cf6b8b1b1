"""stores.fscheck.records: the handover check's records, and how a reader tells torn from good."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stores.fscheck.records import encode, payload, scan


def stream(count: int) -> bytes:
    return b"".join(encode(seq) for seq in range(1, count + 1))


def test_round_trip_and_lengths_vary():
    result = scan(stream(30))
    assert result.good == list(range(1, 31)) and result.end == "clean end"
    assert len({len(payload(n)) for n in range(1, 31)}) > 20


def test_every_torn_tail_keeps_the_complete_records():
    data = stream(3)
    cut_points = range(len(encode(1)) + len(encode(2)) + 1, len(data))
    for cut in list(cut_points)[:: max(1, len(cut_points) // 200)]:
        result = scan(data[:cut])
        assert result.good == [1, 2], cut
        assert "torn" in result.end


def test_damage_in_an_early_record_stops_the_scan_there():
    data = bytearray(stream(5))
    offset = len(encode(1)) + 40
    data[offset] ^= 0xFF
    result = scan(bytes(data))
    assert result.good == [1] and result.end == "record 2 fails its checksum"


def test_missing_record_and_foreign_bytes_are_reported():
    assert scan(encode(1) + encode(3)).end == "record 3 found where record 2 was expected"
    assert scan(encode(1) + b"\0" * 100).end == "bytes that are not a record header"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_scan_never_raises_on_garbage(data):
    result = scan(encode(1) + data)
    assert result.good[:1] == [1]
