"""Journal record and checkpoint codecs: pure functions over bytes, no files (FORMAT.md 2-3)."""

from __future__ import annotations

import struct

import crc32c
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    PutSubscription,
    RemoveMessage,
    StoreCorrupted,
    StoredMessage,
)
from stores.entries import Prefixes
from stores.journal import checkpoint as ckpt
from stores.journal.index import Location
from stores.journal.reader import checked_messages, record_messages
from stores.journal.records import (
    BATCH,
    HEADER_SIZE,
    SEAL,
    Move,
    RecordError,
    Seal,
    decode_batch,
    decode_seal,
    encode_batch,
    encode_record,
    encode_seal,
    iter_records,
    parse_record,
    valid_record_after,
)

SUB = DurableSubscription("sub/c/s", "c", "s", "/topic/t", selector="x > 1")
OWNED = DurableSubscription("sub/d/s", "d", "s", "/topic/t", None, owner="alice")


def msg(mid: str, body: bytes = b"hello", producer: str | None = None) -> StoredMessage:
    return StoredMessage(mid, "/queue/a", {"persistent": "true", "ü": "\n:"}, body, producer)


def test_header_is_little_endian_crc_length_type_and_crc_covers_type_and_payload() -> None:
    record = encode_record(BATCH, b"\x90")  # msgpack empty array
    crc, length, rtype = struct.unpack("<IIB", record[:HEADER_SIZE])
    assert (length, rtype) == (1, BATCH)
    assert crc == crc32c.crc32c(bytes([BATCH]) + b"\x90")
    assert record[HEADER_SIZE:] == b"\x90"


def test_batch_round_trips_every_op_kind() -> None:
    ops = [
        AddMessage("/queue/a", msg("m1", bytes(range(256)), producer="p1")),
        RemoveMessage("/queue/a", "m0"),
        PutSubscription(SUB),
        PutSubscription(OWNED),
        DropSubscription("sub/x/y"),
        Move("/queue/b", msg("m2", b"")),
    ]
    record = parse_record(encode_batch(ops), 0)
    assert record.type == BATCH
    assert decode_batch(record.payload) == ops


def test_seal_round_trips() -> None:
    seal = Seal(epoch=7, file=4, ends={1: 100, 3: 65536})
    record = parse_record(encode_seal(seal), 0)
    assert record.type == SEAL
    assert decode_seal(record.payload) == seal


@pytest.mark.parametrize("cut", [0, 3, HEADER_SIZE, HEADER_SIZE + 5])
def test_incomplete_record_is_reported_not_misread(cut: int) -> None:
    data = encode_batch([AddMessage("/queue/a", msg("m1", b"x" * 100))])
    with pytest.raises(RecordError, match="incomplete"):
        parse_record(data[:cut], 0)


@pytest.mark.parametrize("position", [0, 4, 8, HEADER_SIZE + 3, -1])
def test_any_flipped_byte_is_detected(position: int) -> None:
    data = bytearray(encode_batch([AddMessage("/queue/a", msg("m1"))]))
    data[position] ^= 0x40
    with pytest.raises(RecordError):
        parse_record(bytes(data), 0)


def test_iter_records_stops_at_the_first_bad_record_with_its_offset() -> None:
    first = encode_batch([RemoveMessage("/queue/a", "m1")])
    second = bytearray(encode_batch([RemoveMessage("/queue/a", "m2")]))
    second[-1] ^= 1
    buf = first + bytes(second) + first
    found = []
    with pytest.raises(RecordError) as raised:
        for record in iter_records(buf, 0, len(buf)):
            found.append(record.offset)
    assert found == [0] and raised.value.offset == len(first)
    assert valid_record_after(buf, len(first)) == len(first) + len(second)
    assert valid_record_after(first + bytes(second) + b"\0" * 64, len(first)) is None


def test_well_formed_record_with_bad_content_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode_batch(parse_record(encode_record(BATCH, b"\x91\x93\x09\x01\x02"), 0).payload)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(max_size=20), st.text(max_size=20), st.binary(max_size=200), st.none() | st.text()),
        max_size=8,
    )
)
def test_batches_round_trip(items: list[tuple[str, str, bytes, str | None]]) -> None:
    ops = [AddMessage(q, StoredMessage(mid, q, {q: mid}, body, p)) for q, mid, body, p in items]
    assert decode_batch(parse_record(encode_batch(ops), 0).payload) == ops


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_crashes_the_parser(data: bytes) -> None:
    try:
        record = parse_record(data, 0)
    except RecordError:
        return
    try:
        decode_batch(record.payload)
    except ValueError:
        pass


def test_checkpoint_round_trips_and_detects_damage() -> None:
    prefixes = Prefixes()
    cp = ckpt.Checkpoint(
        epoch=3,
        pos=(5, 1234),
        files={2: 65536, 5: None},
        queues=[ckpt.columns(prefixes, "/queue/a", ["m1", "m2", "m0", "x"], [
            Location(2, 100, 300), Location(5, 9, 77), Location(5, 99, 7), Location(6, 0, 1)])],
        subscriptions=[SUB, OWNED],
        producers=["p1", "p2"],
        prefixes=prefixes.names,
        records=({2: (1, 300), 5: (2, 84), 6: (1, 1)}, {}),
    )
    data = ckpt.encode(cp)
    assert ckpt.decode(data) == cp
    damaged = bytearray(data)
    damaged[-3] ^= 0x10
    with pytest.raises(ckpt.CheckpointError, match="CRC"):
        ckpt.decode(bytes(damaged))
    with pytest.raises(ckpt.CheckpointError):
        ckpt.decode(data[:-1])
    with pytest.raises(ckpt.CheckpointError, match="magic"):
        ckpt.decode(b"nonsense" + data[8:])
    with pytest.raises(ckpt.CheckpointError, match="version 4"):
        ckpt.decode(b"BMQJCKP4" + data[8:])


def test_a_subscription_without_owner_is_written_as_older_versions_wrote_it() -> None:
    # Without authentication nothing on disk changes: a PUT_SUB keeps its five fields.
    (plain,) = msgpack.unpackb(parse_record(encode_batch([PutSubscription(SUB)]), 0).payload)
    assert plain == [3, "sub/c/s", "c", "s", "/topic/t", "x > 1"]
    (owned,) = msgpack.unpackb(parse_record(encode_batch([PutSubscription(OWNED)]), 0).payload)
    assert owned == [3, "sub/d/s", "d", "s", "/topic/t", None, "alice"]
    with pytest.raises(ValueError):
        decode_batch(msgpack.packb([[3, "k", "c", "s", "/topic/t", None, 7]]))  # an owner is a string


def raw_checkpoint(entries: list[list[object]]) -> bytes:
    """A version 1 checkpoint whose one queue holds `entries` as they are, well-formed or not."""
    body = {"epoch": 1, "pos": [1, 0], "files": [[1, None]], "queues": [["/queue/a", entries]],
            "subs": [], "producers": []}
    payload = msgpack.packb(body, use_bin_type=True)
    return ckpt.MAGIC_V1 + struct.pack("<II", crc32c.crc32c(payload), len(payload)) + payload


@pytest.mark.parametrize("entry", [
    ["m1", "2", 100, 300],
    ["m1", 2, True, 300],
    ["m1", 2, -1, 300],
    [7, 2, 100, 300],
    ["m1", 2, 1 << 40, 300],  # beyond what a place holds
    ["m1", 1 << 23, 100, 300],
])
def test_a_checkpoint_entry_of_the_wrong_types_is_refused(entry: list[object]) -> None:
    good = ckpt.decode(raw_checkpoint([["m0", 2, 100, 300]]))
    assert good.prefixes == ["m"] and list(good.queues[0][1].keys) == [0] and not good.queues[0][1].extras
    with pytest.raises(ckpt.CheckpointError, match="malformed"):
        ckpt.decode(raw_checkpoint([["m0", 2, 100, 300], entry]))


def test_a_checkpoint_entry_of_three_fields_is_refused() -> None:
    body = {"epoch": 1, "pos": [1, 0], "files": [[1, None]], "queues": [["/queue/a", [["m1", 2, 100]]]],
            "subs": [], "producers": []}
    payload = msgpack.packb(body, use_bin_type=True)
    data = ckpt.MAGIC_V1 + struct.pack("<II", crc32c.crc32c(payload), len(payload)) + payload
    with pytest.raises(ckpt.CheckpointError, match="four fields"):
        ckpt.decode(data)


def _batch_record(items: list[object]) -> bytes:
    return encode_record(BATCH, msgpack.packb(items, use_bin_type=True))


@pytest.mark.parametrize(
    "item",
    [
        [1, "q", "m1", "/queue/q", {"a": "b"}, b"body", None],  # intact ADD
        [5, "q", "m1", "/queue/q", {}, b"", "p1"],  # intact MOVE
        [1, "q", "m1", "/queue/q", {"a": 1}, b"body", None],  # header value not a str
        [1, "q", "m1", "/queue/q", {b"a": "b"}, b"body", None],  # header key not a str
        [1, "q", "m1", "/queue/q", {}, "not bin", None],  # body not bin
        [1, "q", "m1", 7, {}, b"", None],  # destination not a str
        [1, "q", "m1", "/queue/q", {}, b"", 3],  # producer id neither str nor nil
        [2, "q", "m1"],  # a REMOVE: holds no message
    ],
)
def test_the_fast_read_decoder_agrees_with_the_checked_one(item: list[object]) -> None:
    record = _batch_record([[2, "q", "other"], item])
    wanted = {("q", "m1")}
    try:
        expected: object = checked_messages(record, len(record), "db-1.log@0", wanted)
    except StoreCorrupted as exc:
        with pytest.raises(StoreCorrupted) as raised:
            record_messages(memoryview(record), len(record), "db-1.log@0", wanted)
        assert str(raised.value) == str(exc)
        return
    assert record_messages(memoryview(record), len(record), "db-1.log@0", wanted) == expected


def test_the_fast_read_decoder_words_a_damaged_record_as_the_checked_one() -> None:
    record = bytearray(_batch_record([[1, "q", "m1", "/queue/q", {}, b"body", None]]))
    record[-1] ^= 0xFF
    with pytest.raises(StoreCorrupted, match="CRC mismatch"):
        record_messages(memoryview(bytes(record)), len(record), "db-1.log@0", {("q", "m1")})
    record[-1] ^= 0xFF
    with pytest.raises(StoreCorrupted, match="not the BATCH record"):
        record_messages(memoryview(bytes(record) + b"x"), len(record) + 1, "db-1.log@0", {("q", "m1")})
