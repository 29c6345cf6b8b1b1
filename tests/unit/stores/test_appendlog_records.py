"""Pure framing and payload codecs of the append log (stores/appendlog/FORMAT.md)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stores.appendlog import records
from stores.appendlog.records import BadFrame, Frame, RecordType
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    PutSubscription,
    RemoveMessage,
    StoreCorrupted,
    StoredMessage,
)

OPS = [
    AddMessage("/queue/a", StoredMessage("m1", "/queue/a", {"k": "v"}, b"\x00\xff", "p1")),
    AddMessage("q\x00", StoredMessage("m2", "/topic/t", {}, b"", None)),
    RemoveMessage("/queue/a", "m1"),
    PutSubscription(DurableSubscription("c:s", "c", "s", "/topic/t", "x > 1")),
    DropSubscription("c:s"),
]


def test_frame_layout_is_crc_length_type_payload() -> None:
    frame = records.encode_frame(RecordType.BATCH, b"abc")
    assert len(frame) == records.HEADER_SIZE + 3
    assert frame[4:8] == (3).to_bytes(4, "little") and frame[8] == RecordType.BATCH and frame[9:] == b"abc"
    decoded = records.decode_frame(frame, 0)
    assert decoded == Frame(RecordType.BATCH, b"abc", 0, len(frame))


def test_every_damaged_byte_is_detected() -> None:
    frame = records.encode_frame(RecordType.BATCH, b"payload")
    for i in range(len(frame)):
        damaged = bytearray(frame)
        damaged[i] ^= 0x40
        assert isinstance(records.decode_frame(bytes(damaged), 0), BadFrame), i


def test_short_data_is_a_frame_of_unknown_end() -> None:
    frame = records.encode_frame(RecordType.BATCH, b"payload")
    for cut in range(len(frame)):
        bad = records.decode_frame(frame[:cut], 0)
        assert isinstance(bad, BadFrame) and bad.end is None


def test_a_limit_hides_bytes_past_it() -> None:
    frame = records.encode_frame(RecordType.BATCH, b"payload")
    assert isinstance(records.decode_frame(frame + frame, len(frame), limit=len(frame) + 5), BadFrame)
    assert list(records.iter_frames(frame + frame, 0, len(frame))) == [records.decode_frame(frame, 0)]


def test_torn_tail_versus_damage_in_the_middle() -> None:
    a, b = records.encode_frame(RecordType.BATCH, b"a" * 20), records.encode_frame(RecordType.BATCH, b"b")
    damaged_last = a + b[:-1] + b"X"
    bad = records.decode_frame(damaged_last, len(a))
    assert isinstance(bad, BadFrame) and records.is_torn_tail(damaged_last, bad)
    damaged_middle = a[:-1] + b"X" + b
    bad = records.decode_frame(damaged_middle, 0)
    assert isinstance(bad, BadFrame) and not records.is_torn_tail(damaged_middle, bad)
    cut = a + b[:5]
    bad = records.decode_frame(cut, len(a))
    assert isinstance(bad, BadFrame) and records.is_torn_tail(cut, bad)


def test_batches_round_trip_every_op_kind() -> None:
    assert records.decode_batch(records.encode_batch(OPS), "x") == OPS
    many = [RemoveMessage("q", str(i)) for i in range(70000)]  # array32 header
    assert records.decode_batch(records.encode_batch(many), "x") == many
    assert records.decode_batch(records.encode_batch(OPS * 4), "x") == OPS * 4  # array16 header


def test_segment_header_round_trips() -> None:
    header = records.decode_segment_header(records.encode_segment_header(7, 3, {5: 100, 6: 2000}), "x")
    assert header == records.SegmentHeader(7, 3, {5: 100, 6: 2000})
    with pytest.raises(StoreCorrupted, match="version"):
        records.decode_segment_header(records._pack([2, 7, 3, []]), "x")


def test_snapshot_chunks_round_trip_and_respect_the_chunk_size() -> None:
    messages = [StoredMessage(f"m{i}", "/queue/a", {}, b"x" * 100, f"p{i}") for i in range(50)]
    subs = [DurableSubscription("c:s", "c", "s", "/topic/t", None)]
    chunks = list(records.snapshot_chunks({"/queue/a": messages}, subs, ["p1", "p2"], chunk_bytes=1000))
    kinds = [chunk.type for chunk in chunks]
    assert kinds.count(RecordType.SNAP_MESSAGES) > 5 and kinds[-2:] == [
        RecordType.SNAP_SUBSCRIPTIONS,
        RecordType.SNAP_PRODUCERS,
    ]
    restored = []
    for chunk in chunks:
        if chunk.type is RecordType.SNAP_MESSAGES:
            queue, part = records.decode_snap_messages(chunk.payload, "x")
            assert queue == "/queue/a" and len(chunk.payload) < 1200
            assert (chunk.queue, chunk.message_ids) == (queue, tuple(m.message_id for m in part))
            restored.extend(part)
    assert restored == messages
    assert records.decode_snap_subscriptions(chunks[-2].payload, "x") == subs
    assert records.decode_snap_producers(chunks[-1].payload, "x") == ["p1", "p2"]


def test_unencodable_ops_are_refused_when_encoding() -> None:
    with pytest.raises(TypeError):
        records.encode_batch([AddMessage("q", StoredMessage("m", "q", {"n": 1}, b"", None))])  # type: ignore[dict-item]


@settings(max_examples=300)
@given(st.binary(max_size=80), st.integers(0, 80))
def test_decode_frame_never_raises(data: bytes, offset: int) -> None:
    result = records.decode_frame(data, offset)
    assert isinstance(result, Frame | BadFrame)


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_payload_decoders_raise_only_store_corrupted(data: bytes) -> None:
    decoders = [
        records.decode_batch,
        records.decode_segment_header,
        records.decode_snap_messages,
        records.decode_snap_subscriptions,
        records.decode_snap_producers,
    ]
    for decode in decoders:
        try:
            decode(data, "somewhere")
        except StoreCorrupted as exc:
            assert exc.where == "somewhere"


_GOOD_FIELDS = ["m1", "/queue/q", {"a": "b"}, b"body", None]


_FIELDS = [
    _GOOD_FIELDS,
    ["m1", "/queue/q", {}, b"", "p1"],
    ["m1", "/queue/q", {"a": 1}, b"body", None],  # header value not a str
    ["m1", "/queue/q", {b"a": "b"}, b"body", None],  # header key not a str
    ["m1", "/queue/q", {}, "not bin", None],  # body not bin
    ["m1", 7, {}, b"", None],  # destination not a str
    ["m1", "/queue/q", {}, b"", 3],  # producer id neither str nor nil
    ["m1", "/queue/q", {}, b""],  # a field short
    [1, "/queue/q", {}, b"", None],  # no id to tell whether it is wanted
]


@pytest.mark.parametrize("fields", _FIELDS)
def test_the_fast_paths_agree_with_the_checked_decoders(fields: list[object]) -> None:
    """Reads (record_messages) and replay (replay_items) take shortcuts; what they accept and
    what they refuse is what the checked decoders accept and refuse."""
    payload = msgpack.packb([["R", "q", "other"], ["A", "q", fields]], use_bin_type=True)
    record = records.encode_frame(records.RecordType.BATCH, payload)
    wanted = {("q", "m1")}
    try:
        expected: object = records.checked_messages(record, len(record), "log-1.seg@0", wanted)
    except StoreCorrupted as exc:
        with pytest.raises(StoreCorrupted) as raised:
            records.record_messages(memoryview(record), len(record), "log-1.seg@0", wanted)
        assert str(raised.value) == str(exc)
        assert records.replay_items(payload) is None
        return
    assert records.record_messages(memoryview(record), len(record), "log-1.seg@0", wanted) == expected
    ops = records.decode_batch(payload, "log-1.seg@0")
    items = records.replay_items(payload)
    assert items is not None and len(items) == len(ops) == 2


@pytest.mark.parametrize("fields", _FIELDS)
def test_the_fast_snapshot_read_agrees_with_the_checked_decoder(fields: list[object]) -> None:
    other = ["other", "/queue/q", {}, b"", None]
    payload = msgpack.packb("q") + msgpack.packb([other, fields], use_bin_type=True)
    record = records.encode_frame(records.RecordType.SNAP_MESSAGES, payload)
    wanted = {("q", "m1")}
    try:
        expected: object = records.checked_messages(record, len(record), "log-1.seg@0", wanted)
    except StoreCorrupted as exc:
        with pytest.raises(StoreCorrupted) as raised:
            records.record_messages(memoryview(record), len(record), "log-1.seg@0", wanted)
        assert str(raised.value) == str(exc)
        return
    assert records.record_messages(memoryview(record), len(record), "log-1.seg@0", wanted) == expected
