"""Reading data files: whole-file reads for replay, single records for live messages' bodies."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from stores.base import AddMessage, StoreCorrupted, StoredMessage
from stores.framing import HEADER_SIZE, frame_size
from stores.journal.index import Key, Location
from stores.journal.layout import data_name, data_path
from stores.journal.records import BATCH, Move, RecordError, decode_batch, parse_record

ReadAt = Callable[[int, int], bytes | memoryview]  # (offset, length) → bytes


def read_file(path: Path) -> bytes:
    with open(path, "rb") as f:  # reading only: appends go through stores.fsio
        return f.read()


def read_head(path: Path, limit: int) -> bytes:
    """The first `limit` bytes of a file (enough for its SEAL)."""
    with open(path, "rb") as f:
        return f.read(limit)


def first_record_bytes(path: Path) -> bytes:
    """Bytes covering the file's first record (or fewer, if the file is shorter)."""
    head = read_head(path, HEADER_SIZE)
    size = frame_size(head)
    if size is None:
        return head
    return read_head(path, min(size, HEADER_SIZE + (1 << 20)))


def messages_at(
    read_at: ReadAt, file: int, wanted: Iterable[tuple[Key, Location]]
) -> dict[Key, StoredMessage]:
    """Fetch live messages from their records in data file `file` (CRC-checked)."""
    cache: dict[int, dict[Key, StoredMessage]] = {}  # record offset → messages it holds
    found: dict[Key, StoredMessage] = {}
    for key, loc in wanted:
        where = f"{data_name(file)}@{loc.offset}"
        if loc.offset not in cache:
            data = read_at(loc.offset, loc.length)
            try:
                record = parse_record(data, 0)
                if record.type != BATCH or record.size != loc.length:
                    raise RecordError(0, "not the BATCH record the index points at")
                ops = decode_batch(record.payload)
            except (RecordError, ValueError) as exc:
                raise StoreCorrupted(where, f"cannot read a live message's record: {exc}") from None
            cache[loc.offset] = {
                (op.queue, op.message.message_id): op.message
                for op in ops
                if isinstance(op, AddMessage | Move)
            }
        message = cache[loc.offset].get(key)
        if message is None:
            raise StoreCorrupted(where, f"record does not hold message {key[1]!r} of {key[0]!r}")
        found[key] = message
    return found


def read_messages(directory: Path, file: int, wanted: list[tuple[Key, Location]]) -> dict[Key, StoredMessage]:
    """`messages_at` for a data file that is not open for writing."""
    path = data_path(directory, file)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise StoreCorrupted(
            data_name(file), f"missing, but it holds {len(wanted)} live message(s)"
        ) from None
    try:
        needed = sum({loc.offset: loc.length for _, loc in wanted}.values())
        if needed * 4 < os.fstat(fd).st_size:
            return messages_at(lambda offset, length: os.pread(fd, length, offset), file, wanted)
        # Most of the file is live: one sequential read beats a pread per record.
        data = memoryview(read_file(path))
        return messages_at(lambda offset, length: data[offset : offset + length], file, wanted)
    finally:
        os.close(fd)
