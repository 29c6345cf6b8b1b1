"""Packed index columns on disk (stores/journal/FORMAT.md section 3): one queue's QueueEntries
columns (stores/entries.py) as msgpack binaries of little-endian numbers, and the checks that
make what is read back something QueueEntries.of can take. Pure; shared by the stores'
checkpoints (the journal's, and the append log's, whose entries are sized: a sixth column,
stores/appendlog/FORMAT.md "Checkpoint").

Two layouts: whole columns, one binary each (the append log's, the journal's version 2), and
blocks (the journal's version 3): a queue's columns cut into chunks of at most a block's slots,
each chunk's columns together, so a reader builds the index a block at a time as it reads the
file and never holds a second whole copy of the columns."""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import compress, islice
from operator import lt

import msgpack

from stores.base import DurableSubscription
from stores.entries import (
    COUNTER_SHIFT,
    DIGITS,
    FILE_SHIFT,
    MAX_FILE,
    MAX_PREFIXES,
    Chunk,
    Chunked,
    Packed,
    Prefixes,
    Streamed,
)

_BIG_ENDIAN = sys.byteorder == "big"  # columns are little-endian on disk
assert MAX_FILE == (1 << (63 - FILE_SHIFT)) - 1  # what checked relies on


def encode_queue(packer: msgpack.Packer, queue: str, packed: Packed) -> Iterator[bytes | memoryview]:
    """One queue as [name, keys, places, lengths, extras], its columns as little-endian binaries
    (memoryviews of the arrays: no copy on a little-endian machine); sized entries' (the append
    log's) as [name, keys, places, lengths, extras, sizes]: the journal's stay five long."""
    keys, places, lengths, extras, sizes = packed
    yield packer.pack_array_header(5 if sizes is None else 6) + packer.pack(queue)
    for column in (keys, places, lengths):
        yield from _binary(column)
    yield packer.pack([list(extra) for extra in extras])
    if sizes is not None:
        yield from _binary(sizes)


def _binary(column: array[int] | Chunked) -> Iterator[bytes | memoryview]:
    if isinstance(column, Chunked):  # a block at a time: the header says the total
        yield _bin_header(column.count * array(column.typecode).itemsize)
        count = 0
        size = array(column.typecode).itemsize
        for chunk in column.chunks():  # little-endian already
            count += len(chunk) // size
            yield memoryview(chunk)
        if count != column.count:  # the checkpoint would be corrupt: its write fails instead
            raise ValueError(f"a column gave {count} numbers, not {column.count}")
        return
    data = _little(column)
    yield _bin_header(len(data))
    yield data


def encode_queue_blocks(packer: msgpack.Packer, queue: str, packed: Packed,
                        block: int) -> Iterator[bytes | memoryview]:
    """One queue as [name, count, extras, [[keys, places, lengths(, sizes)], ...]]: its columns a
    chunk at a time (a Chunked column's own chunks, an array's `block` numbers at a time)."""
    keys, places, lengths, extras, sizes = packed
    columns = [keys, places, lengths] + ([] if sizes is None else [sizes])
    parts = keys.parts if isinstance(keys, Chunked) else -(-len(keys) // block)
    yield b"".join([packer.pack_array_header(4), packer.pack(queue), packer.pack(len(keys)),
                    packer.pack([list(extra) for extra in extras]), packer.pack_array_header(parts)])
    count = made = 0
    for chunk in zip(*(_chunks(column, block) for column in columns), strict=True):
        yield packer.pack_array_header(len(chunk))
        for data in chunk:
            yield _bin_header(len(data))
            yield memoryview(data)
        count += len(chunk[0]) // 8
        made += 1
    if made != parts or count != len(keys):  # the checkpoint would be corrupt: its write fails instead
        raise ValueError(f"a queue gave {count} messages in {made} chunks, not {len(keys)} in {parts}")


def _chunks(column: array[int] | Chunked, block: int) -> Iterator[bytes | bytearray | memoryview]:
    if isinstance(column, Chunked):  # little-endian already
        yield from column.chunks()
        return
    for lo in range(0, len(column), block):
        yield _little(column[lo:lo + block])


def encode_queues_on(packer: msgpack.Packer, queues: Sequence[tuple[str, Packed]],
                     subscriptions: Iterable[DurableSubscription], producers: list[str]
                     ) -> Iterator[bytes | memoryview]:
    """A checkpoint body's tail, after its "queues" key: the queues' array, then "subs" and
    "producers" (both stores' checkpoints end so)."""
    yield packer.pack_array_header(len(queues))
    for queue, packed in queues:
        yield from encode_queue(packer, queue, packed)
    subs = [s.fields() for s in subscriptions]
    yield packer.pack("subs") + packer.pack(subs) + packer.pack("producers") + packer.pack(producers)


def _little(column: array[int]) -> memoryview:
    if _BIG_ENDIAN:
        column = array(column.typecode, column)
        column.byteswap()
    return memoryview(column).cast("B")


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def prefix_table(value: object) -> list[str]:
    names = list(value) if isinstance(value, tuple) else None
    if names is None or len(names) > MAX_PREFIXES or set(map(type, names)) - {str}:
        raise ValueError("the prefixes are not a list of strings")
    if len(set(names)) != len(names) or any(name != name.rstrip(DIGITS) for name in names):
        raise ValueError("a prefix is repeated or ends in a digit")
    return names


def decode_queues(unpacker: msgpack.Unpacker, prefixes: Prefixes,
                  sized: bool = False) -> list[tuple[str, Packed]]:
    """An array of queues' [name, keys, places, lengths, extras], each checked; `sized`: each
    is [name, keys, places, lengths, extras, sizes] instead (and nothing else is taken)."""
    queues = []
    fields = 6 if sized else 5
    for _ in range(unpacker.read_array_header()):
        if unpacker.read_array_header() != fields:
            raise ValueError(f"a queue is not [name, keys, places, lengths, extras{', sizes' * sized}]")
        queue = str_of(unpacker.unpack())
        keys, places, lengths = (_column(unpacker.unpack(), code) for code in "qqI")
        extras = [(int_of(slot), str_of(mid)) for slot, mid in unpacker.unpack()]
        sizes = _column(unpacker.unpack(), "I") if sized else None
        queues.append((queue, checked(Packed(keys, places, lengths, extras, sizes), prefixes)))
    return queues


def read_queue_blocks(unpacker: msgpack.Unpacker, prefixes: Prefixes,
                      sized: bool = False) -> Iterator[tuple[str, Streamed]]:
    """An array of queues as `encode_queue_blocks` wrote them, a queue at a time: each one's
    chunks are read (and checked) as its Streamed is consumed, which must be before the next
    queue is asked for (what is left of them is read and dropped then)."""
    for _ in range(unpacker.read_array_header()):
        if unpacker.read_array_header() != 4:
            raise ValueError("a queue is not [name, count, extras, chunks]")
        queue = str_of(unpacker.unpack())
        count = int_of(unpacker.unpack())
        extras = _extras(unpacker.unpack(), count, prefixes)
        chunks = _read_chunks(unpacker, unpacker.read_array_header(), count, extras, prefixes, sized)
        yield queue, Streamed(count, extras, chunks, sized)
        for _ in chunks:  # the consumer stopped early: the file goes on after them
            pass


def _extras(value: object, count: int, prefixes: Prefixes) -> list[tuple[int, str]]:
    if not isinstance(value, tuple):
        raise ValueError("a queue's extras are not an array")
    extras = [(int_of(slot), str_of(mid)) for slot, mid in value]
    slots = [slot for slot, _ in extras]
    if slots != sorted(set(slots)) or (slots and slots[-1] >= count):
        raise ValueError("a queue's extras are out of order or range")
    if len({mid for _, mid in extras}) != len(extras):
        raise ValueError("a message id is repeated in a queue")
    return extras


def _read_chunks(unpacker: msgpack.Unpacker, parts: int, count: int, extras: list[tuple[int, str]],
                 prefixes: Prefixes, sized: bool) -> Iterator[Chunk]:
    """A queue's chunks, each checked as `checked` checks whole columns (the keyed keys increase
    across chunks too)."""
    codes = "qqII" if sized else "qqI"
    slots = [slot for slot, _ in extras]
    extra_keys = {key for _, mid in extras if (key := prefixes.key(mid)) is not None}
    limit = len(prefixes.names) << COUNTER_SHIFT
    last, lo = -1, 0
    for _ in range(parts):
        if unpacker.read_array_header() != len(codes):
            raise ValueError(f"a chunk is not [keys, places, lengths{', sizes' * sized}]")
        keys, places, lengths, *rest = (_column(unpacker.unpack(), code) for code in codes)
        n = len(keys)
        if len(places) != n or len(lengths) != n or (rest and len(rest[0]) != n) or lo + n > count:
            raise ValueError("a queue's columns differ in length")
        keyed = _keyed_of(keys, slots, lo)
        if keyed:
            if keyed[0] <= last or keyed[-1] >= limit or not all(map(lt, keyed, islice(keyed, 1, None))):
                raise ValueError("a queue's message keys are not increasing, or out of range")
            if extra_keys and not extra_keys.isdisjoint(keyed):
                raise ValueError("a message id is repeated in a queue")
            last = keyed[-1]
        if _negative(places):
            raise ValueError("a location is out of range")
        lo += n
        yield keys, places, lengths, rest[0] if rest else None
    if lo != count:
        raise ValueError(f"a queue's chunks hold {lo} messages, not {count}")


def _keyed_of(keys: array[int], slots: list[int], lo: int) -> array[int]:
    """The keys of a chunk starting at slot `lo` but those of its extras."""
    at, end = bisect_left(slots, lo), bisect_left(slots, lo + len(keys))
    if at == end:
        return keys
    mask = bytearray(b"\x01") * len(keys)
    for slot in slots[at:end]:
        mask[slot - lo] = 0
    return array("q", compress(keys, mask))


def _column(value: object, typecode: str) -> array[int]:
    if not isinstance(value, bytes):
        raise ValueError("a column is not binary")
    column = array(typecode)
    if len(value) % column.itemsize:
        raise ValueError(f"a column of {len(value)} bytes is not of {column.itemsize}-byte numbers")
    column.frombytes(value)
    if _BIG_ENDIAN:
        column.byteswap()
    return column


def checked(packed: Packed, prefixes: Prefixes) -> Packed:
    """Refuse what QueueEntries.of could not take: columns of different lengths, keyed keys out of
    order or of unknown prefixes, extras out of order or repeating an id, places out of range."""
    keys, places, lengths, extras, sizes = packed
    if not len(keys) == len(places) == len(lengths) == (len(keys) if sizes is None else len(sizes)):
        raise ValueError("a queue's columns differ in length")
    slots = [slot for slot, _ in extras]
    if slots != sorted(set(slots)) or (slots and slots[-1] >= len(keys)):
        raise ValueError("a queue's extras are out of order or range")
    keyed = keys
    if slots:
        mask = bytearray(b"\x01") * len(keys)
        for slot in slots:
            mask[slot] = 0
        keyed = array("q", compress(keys, mask))
    if keyed and (keyed[0] < 0 or keyed[-1] >> COUNTER_SHIFT >= len(prefixes.names)):
        raise ValueError("a message key is out of range")
    if not all(map(lt, keyed, islice(keyed, 1, None))):
        raise ValueError("a queue's message keys are not increasing")
    ids = [mid for _, mid in extras]
    if len(set(ids)) != len(ids) or any(_keyed(prefixes, keyed, mid) for mid in ids):
        raise ValueError("a message id is repeated in a queue")
    if _negative(places):  # a non-negative 64-bit place is a file below 2**23: MAX_FILE
        raise ValueError("a location is out of range")
    return packed


def _negative(column: array[int]) -> bool:
    """Does a column of 64-bit numbers hold a negative one? (Their sign bytes, in one C call each:
    min() over a million numbers took a tenth of a second of a cold open.)"""
    signs = memoryview(column).cast("B")[0 if _BIG_ENDIAN else 7 :: 8].tobytes()
    return bool(signs.translate(None, _NON_NEGATIVE))


_NON_NEGATIVE = bytes(range(128))


def _keyed(prefixes: Prefixes, keyed: array[int], message_id: str) -> bool:
    key = prefixes.key(message_id)
    if key is None:
        return False
    slot = bisect_left(keyed, key)
    return slot < len(keyed) and keyed[slot] == key


def int_of(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def str_of(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


