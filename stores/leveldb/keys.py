"""Pure key and value encoding of the LevelDB store (see FORMAT.md beside this file).

No I/O here: every function maps Python values to bytes or back, and decoding raises
`StoreCorrupted` for anything it does not recognise instead of guessing.
"""

from __future__ import annotations

import struct

import msgpack

from stores.base import DurableSubscription, StoreCorrupted, StoredMessage
from stores.framing import exact_message_fields, is_message_fields, message_fields, unpack_msgpack

FORMAT_VERSION = 2  # 2: with the i/ and d/ keys; a format-1 directory is upgraded once on open
UPGRADABLE_FORMAT = 1

MESSAGE_PREFIX = b"m/"
SUBSCRIPTION_PREFIX = b"s/"
PRODUCER_PREFIX = b"p/"
INDEX_PREFIX = b"i/"  # i/ esc(queue) 0x00 utf8(message id) -> u64(seq): where a message is
DEPTH_PREFIX = b"d/"  # d/ esc(queue) -> u64(messages stored): an open reads these, not every m/
META_FORMAT = b"meta/format"
META_SEQ = b"meta/seq"
META_EPOCH = b"meta/epoch"
META_SYNC = b"meta/sync"  # rewritten by the periodic sync: LevelDB has no bare fsync call

_SEP = b"\x00"
_ESC = b"\x01"
_U64 = struct.Struct(">Q")  # big-endian, so byte order == numeric order == insertion order
MAX_SEQ = (1 << 64) - 1


def u64(value: int) -> bytes:
    return _U64.pack(value)


def parse_u64(data: bytes, where: str) -> int:
    if len(data) != _U64.size:
        raise StoreCorrupted(where, f"expected an 8-byte counter, found {len(data)} bytes")
    value: int = _U64.unpack(data)[0]
    return value


def escape(name: str) -> bytes:
    """UTF-8 with 0x00 and 0x01 escaped, so the result never contains the 0x00 separator."""
    raw = name.encode("utf-8")
    return raw.replace(_ESC, b"\x01\x02").replace(_SEP, b"\x01\x01")


def unescape(data: bytes) -> str:
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x01:
            if i + 1 >= len(data) or data[i + 1] not in (0x01, 0x02):
                raise StoreCorrupted(f"key {data!r}", "bad escape sequence in queue name")
            out.append(0x00 if data[i + 1] == 0x01 else 0x01)
            i += 2
        else:
            out.append(byte)
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreCorrupted(f"key {data!r}", f"queue name is not UTF-8: {exc}") from None


def queue_prefix(queue: str) -> bytes:
    """Every message key of `queue` starts with this, and no other queue's key does."""
    return MESSAGE_PREFIX + escape(queue) + _SEP


def message_key(queue: str, seq: int) -> bytes:
    return queue_prefix(queue) + u64(seq)


def queue_range(queue: str, after: int | None) -> tuple[bytes, bytes]:
    """[start, stop) of the message keys of `queue` with a seq above `after` (None: all of them).

    `queue_prefix` ends in the 0x00 separator, so the same prefix ending in 0x01 sorts after every
    key of this queue and at or before every key of any other queue.
    """
    prefix = queue_prefix(queue)
    stop = prefix[:-1] + b"\x01"
    if after is None:
        return prefix, stop
    if after >= MAX_SEQ:
        return stop, stop
    return prefix + u64(after + 1), stop


def parse_message_key(key: bytes, names: dict[bytes, str] | None = None) -> tuple[str, int]:
    """(queue, seq) of a message key. `names` (escaped name -> queue) saves an open that parses
    every key from unescaping the same few names again: it holds one entry per queue met."""
    body = key[len(MESSAGE_PREFIX) :]
    sep = body.find(_SEP)
    if not key.startswith(MESSAGE_PREFIX) or sep < 0 or len(body) - sep - 1 != _U64.size:
        raise StoreCorrupted(f"key {key!r}", "malformed message key")
    escaped = body[:sep]
    queue = None if names is None else names.get(escaped)
    if queue is None:
        queue = unescape(escaped)
        if names is not None:
            names[escaped] = queue
    seq: int = _U64.unpack_from(body, sep + 1)[0]
    return queue, seq


def index_prefix(queue: str) -> bytes:
    """Every index key of `queue` starts with this, and no other queue's key does (as `queue_prefix`)."""
    return INDEX_PREFIX + escape(queue) + _SEP


def index_key(queue: str, message_id: str) -> bytes:
    """Raises UnicodeEncodeError (a ValueError) for a name or id that is not encodable."""
    return index_prefix(queue) + message_id.encode("utf-8")


def parse_index_id(key: bytes, prefix: bytes) -> str:
    """The message id of an index key that starts with `prefix` (`index_prefix(queue)`)."""
    try:
        return key[len(prefix) :].decode("utf-8")
    except UnicodeDecodeError:
        raise StoreCorrupted(f"key {key!r}", "message id is not UTF-8") from None


def depth_key(queue: str) -> bytes:
    return DEPTH_PREFIX + escape(queue)


def parse_depth_key(key: bytes) -> str:
    return unescape(key[len(DEPTH_PREFIX) :])


def subscription_key(key: str) -> bytes:
    return SUBSCRIPTION_PREFIX + key.encode("utf-8")


def producer_key(seq: int) -> bytes:
    return PRODUCER_PREFIX + u64(seq)


def parse_producer_key(key: bytes) -> int:
    return parse_u64(key[len(PRODUCER_PREFIX) :], f"key {key!r}")


def encode_message(message: StoredMessage) -> bytes:
    """msgpack array; raises TypeError/ValueError for values msgpack cannot hold."""
    packed: bytes = msgpack.packb(message_fields(message), use_bin_type=True)
    return packed


def decode_message(data: bytes, where: str) -> StoredMessage:
    fields = unpack_msgpack(data, where, "value")
    if not (isinstance(fields, list) and len(fields) == 5):
        raise StoreCorrupted(where, "message value is not a 5-element array")
    if not is_message_fields(fields):
        raise StoreCorrupted(where, "message value has fields of the wrong type")
    return StoredMessage(*fields)


def quick_decode_message(data: bytes) -> StoredMessage | None:
    """`decode_message` without the wording: None for anything it would refuse (it then says why).
    A page's per-message cost: one unpack, exact type checks."""
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return StoredMessage(*fields) if exact_message_fields(fields) else None


def quick_message_id(data: bytes) -> str | None:
    """`message_id_of` for a value as msgpack packs one (a fixarray of 5 whose id is a fixstr or
    str8): sliced and decoded, with no Unpacker (which copies the whole value); None for any other
    value, which `message_id_of` then reads or words. An open's per-message cost."""
    if len(data) < 2 or data[0] != 0x95:
        return None
    tag = data[1]
    if 0xA0 <= tag <= 0xBF:
        start, size = 2, tag & 0x1F
    elif tag == 0xD9 and len(data) > 2:
        start, size = 3, data[2]
    else:
        return None
    if start + size > len(data):
        return None
    try:
        return data[start : start + size].decode("utf-8")
    except UnicodeDecodeError:
        return None


def message_id_of(data: bytes, where: str) -> str:
    """The message id of a message value without decoding the rest (its first field); the whole
    value is checked when the message is read."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(data))
    unpacker.feed(data)
    try:
        if unpacker.read_array_header() != 5:
            raise ValueError("not a 5-element array")
        message_id = unpacker.unpack()
    except (ValueError, msgpack.UnpackException) as exc:
        raise StoreCorrupted(where, f"message value is not a message: {exc}") from None
    if not isinstance(message_id, str):
        raise StoreCorrupted(where, "message value has fields of the wrong type")
    return message_id


def encode_subscription(sub: DurableSubscription) -> bytes:
    packed: bytes = msgpack.packb(sub.fields(), use_bin_type=True)
    return packed


def decode_subscription(data: bytes, where: str) -> DurableSubscription:
    fields = unpack_msgpack(data, where, "value")
    if not (isinstance(fields, list) and len(fields) in (5, 6)):
        raise StoreCorrupted(where, "subscription value is not a 5- or 6-element array")
    if not DurableSubscription.valid_fields(fields):
        raise StoreCorrupted(where, "subscription value has fields of the wrong type")
    return DurableSubscription(*fields)


def decode_producer_id(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreCorrupted(where, "producer id is not UTF-8") from None
