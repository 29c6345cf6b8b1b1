"""Pure key/value encoding of the LevelDB store (stores/leveldb/FORMAT.md)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stores.base import DurableSubscription, StoreCorrupted, StoredMessage
from stores.leveldb import keys

names = st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(
    ["", "\x00", "\x01", "a\x00", "a\x01\x02", "/queue/a"]
)


@settings(max_examples=200)
@given(names)
def test_escape_round_trips_and_never_contains_the_separator(name: str) -> None:
    escaped = keys.escape(name)
    assert b"\x00" not in escaped
    assert keys.unescape(escaped) == name


@settings(max_examples=200)
@given(names, names, st.integers(0, 2**64 - 1))
def test_a_queue_prefix_matches_only_that_queues_keys(a: str, b: str, seq: int) -> None:
    key = keys.message_key(b, seq)
    assert key.startswith(keys.queue_prefix(a)) == (a == b)
    assert keys.parse_message_key(key) == (b, seq)


def test_message_keys_sort_by_sequence_number() -> None:
    seqs = [1, 2, 255, 256, 65536, 2**40, 2**64 - 1]
    encoded = [keys.message_key("/queue/q", s) for s in seqs]
    assert sorted(encoded) == encoded
    assert sorted(keys.producer_key(s) for s in reversed(seqs)) == [keys.producer_key(s) for s in seqs]


@pytest.mark.parametrize(
    "key",
    [
        b"m/q",
        b"m/q\x00\x01",
        b"m/q\x00" + b"\x00" * 9,
        b"m/\x01\x03\x00" + b"\x00" * 8,
        b"m/\xff\x00" + b"\x00" * 8,
    ],
)
def test_malformed_message_keys_are_reported_as_corruption(key: bytes) -> None:
    with pytest.raises(StoreCorrupted):
        keys.parse_message_key(key)


def test_message_and_subscription_values_round_trip() -> None:
    message = StoredMessage("id-1", "/queue/a", {"k": "v", "persistent": "true"}, b"\x00body\xff", "p-1")
    assert keys.decode_message(keys.encode_message(message), "here") == message
    anonymous = StoredMessage("id-2", "/queue/a", {}, b"", None)
    assert keys.decode_message(keys.encode_message(anonymous), "here") == anonymous
    sub = DurableSubscription("sub:c:n", "c", "n", "/topic/t", "a = 1")
    assert keys.decode_subscription(keys.encode_subscription(sub), "here") == sub
    assert len(msgpack.unpackb(keys.encode_subscription(sub))) == 5  # as older versions wrote it
    owned = DurableSubscription("sub:d:n", "d", "n", "/topic/t", None, owner="alice")
    assert msgpack.unpackb(keys.encode_subscription(owned))[5] == "alice"
    assert keys.decode_subscription(keys.encode_subscription(owned), "here") == owned
    with pytest.raises(StoreCorrupted):
        keys.decode_subscription(msgpack.packb(["k", "d", "n", "/topic/t", None, 1]), "here")


def test_values_msgpack_cannot_hold_are_refused_when_encoding() -> None:
    with pytest.raises(TypeError):
        keys.encode_message(StoredMessage("id", "/queue/a", {"k": 1}, b"", None))  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        keys.encode_message(StoredMessage("id", "/queue/a", {}, "text", None))  # type: ignore[arg-type]


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_decoding_garbage_raises_only_store_corrupted(data: bytes) -> None:
    for decode in (keys.decode_message, keys.decode_subscription):
        try:
            decode(data, "somewhere")
        except StoreCorrupted as exc:
            assert exc.where == "somewhere"


def test_counters_must_be_eight_bytes() -> None:
    assert keys.parse_u64(keys.u64(42), "x") == 42
    with pytest.raises(StoreCorrupted):
        keys.parse_u64(b"\x00" * 7, "meta/seq")


@settings(max_examples=200)
@given(names, names, st.integers(0, 2**64 - 1), st.none() | st.integers(0, 2**64 - 1))
def test_a_queue_range_holds_exactly_that_queues_keys_after_a_seq(
    a: str, b: str, seq: int, after: int | None
) -> None:
    start, stop = keys.queue_range(a, after)
    inside = start <= keys.message_key(b, seq) < stop
    assert inside == (a == b and (after is None or seq > after))


@pytest.mark.parametrize(
    "value",
    [
        msgpack.packb(["m1", "/queue/q", {}, b"", None], use_bin_type=True),
        msgpack.packb(["é" * 40, "/queue/q", {}, b"", None], use_bin_type=True),  # str8
        msgpack.packb(["x" * 300, "/queue/q", {}, b"", None], use_bin_type=True),  # str16: slow path
        b"\xdc\x00\x05" + msgpack.packb("m1") + b"\xa1q\x80\xc4\x00\xc0",  # array16 of 5: slow path
        msgpack.packb([7, "/queue/q", {}, b"", None]),
        msgpack.packb(["m1", "/queue/q"]),
        b"\x95\xa2\xff\xfe",  # not UTF-8
        b"\x95\xa5ab",  # cut short
        b"",
    ],
)
def test_the_quick_message_id_agrees_with_the_checked_one(value: bytes) -> None:
    quick = keys.quick_message_id(value)
    try:
        checked = keys.message_id_of(value, "key")
    except StoreCorrupted:
        assert quick is None
        return
    # What msgpack itself packs (a fixarray, an id of at most 255 bytes) takes the quick way.
    assert quick == checked if value[0] == 0x95 and len(checked.encode()) < 256 else quick is None


def test_message_keys_parse_alike_with_and_without_the_names_cache() -> None:
    names: dict[bytes, str] = {}
    for queue in ["/queue/a", "q\x00\x01", "/queue/a"]:
        key = keys.message_key(queue, 42)
        assert keys.parse_message_key(key, names) == keys.parse_message_key(key) == (queue, 42)
    assert len(names) == 2
