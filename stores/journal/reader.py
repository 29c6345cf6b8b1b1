"""Reading data files: whole-file reads for replay, single records for live messages' bodies
(through stores/reads.py, which the append log shares)."""

from __future__ import annotations

from collections.abc import Set
from pathlib import Path

from stores.base import AddMessage, StoreCorrupted, StoredMessage
from stores.framing import HEADER_SIZE, frame_size, intact_payload
from stores.journal.index import Key, Location
from stores.journal.layout import data_name, data_path
from stores.journal.records import (
    BATCH,
    Move,
    RecordError,
    decode_batch,
    decode_messages,
    parse_record,
    wanted_messages,
)
from stores.reads import load_file


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


def record_messages(
    data: bytes | memoryview, length: int, where: str, wanted: Set[Key] | None = None
) -> dict[Key, StoredMessage]:
    """The messages of the BATCH record in `data` (CRC-checked): the journal's `reads.Decode`.
    With `wanted`, only those are built (a record of a large group commit holds many queues').

    The read path's hot loop (a page is hundreds of records): the payload is checked and unpacked
    in place and the wanted messages built straight from their ops. Anything unusual (a fault, a
    malformed op) is handed to `checked_messages`, which accepts the same records and words the fault.
    """
    payload = intact_payload(data, length, BATCH) if wanted is not None else None
    if payload is None or wanted is None:
        return checked_messages(data, length, where, wanted)
    found = wanted_messages(payload, wanted)
    return checked_messages(data, length, where, wanted) if found is None else found


def checked_messages(
    data: bytes | memoryview, length: int, where: str, wanted: Set[Key] | None = None
) -> dict[Key, StoredMessage]:
    """`record_messages` through the record and op decoders, which word every fault."""
    try:
        record = parse_record(data, 0)
        if record.type != BATCH or record.size != length:
            raise RecordError(0, "not the BATCH record the index points at")
        ops = decode_batch(record.payload) if wanted is None else decode_messages(record.payload, wanted)
    except (RecordError, ValueError) as exc:
        raise StoreCorrupted(where, f"cannot read a live message's record: {exc}") from None
    return {(op.queue, op.message.message_id): op.message for op in ops if isinstance(op, AddMessage | Move)}


def read_messages(directory: Path, file: int, wanted: list[tuple[Key, Location]]) -> dict[Key, StoredMessage]:
    """`load_messages` where the file must exist (recovery, compaction: nothing deletes it meanwhile)."""
    try:
        return load_messages(directory, file, wanted)
    except FileNotFoundError:
        raise StoreCorrupted(
            data_name(file), f"missing, but it holds {len(wanted)} live message(s)"
        ) from None


def load_messages(directory: Path, file: int, wanted: list[tuple[Key, Location]]) -> dict[Key, StoredMessage]:
    """Live messages from data file `file`; FileNotFoundError if cleanup has deleted it."""
    return load_file(data_path(directory, file), wanted, record_messages)
