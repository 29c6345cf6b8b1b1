"""Compaction and deletion of data files (FORMAT.md section 5). Runs on the writer thread.

The checkpoint is authoritative, so an acknowledgement record never pins a file: a data file
is needed only while it holds a live message (or is at/after the checkpoint position). What
remains of KahaDB's top complaint, one old unconsumed message pinning its file, is solved by
re-appending such messages to the current file (MOVE records) when they are a small part of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from stores.journal.index import Index, Key, Location
from stores.journal.layout import data_name, data_path
from stores.journal.reader import read_messages
from stores.journal.records import Move, encode_batch
from stores.journal.writer import Writer

log = logging.getLogger(__name__)

# A file is compacted when its live records take at most this share of it: moving them costs
# at most a quarter of a file and frees the whole of it.
COMPACT_LIVE_FRACTION = 0.25
MOVE_RECORD_BYTES = 1024 * 1024  # MOVE records are cut at about this size


@dataclass(slots=True)
class CleanupReport:
    moved: int = 0  # live messages re-appended to the current file
    compacted: list[int] = field(default_factory=list)  # files emptied by moving their messages
    deleted: list[int] = field(default_factory=list)


def compactable(index: Index, writer: Writer) -> list[int]:
    """Old files whose few live messages are worth moving forward.

    The two newest files are left alone: their messages are likely to be consumed soon.
    """
    live_bytes = index.live_bytes()
    return [
        n
        for n in sorted(index.live)
        if n < writer.number - 1 and live_bytes[n] <= writer.ends.get(n, 0) * COMPACT_LIVE_FRACTION
    ]


def compact(directory: Path, index: Index, writer: Writer, max_file_size: int, report: CleanupReport) -> None:
    """Re-append the live messages of compactable files as MOVE records (not yet fsync'd)."""
    for n in compactable(index, writer):
        entries = index.located_in(n)
        wanted: list[tuple[Key, Location]] = [((q, mid), loc) for q, mid, loc in entries]
        messages = read_messages(directory, n, wanted)
        chunk: list[Move] = []
        chunk_bytes = 0
        for key, _ in wanted:
            message = messages[key]
            chunk.append(Move(key[0], message))
            chunk_bytes += len(message.body) + 256
            if chunk_bytes >= MOVE_RECORD_BYTES:
                report.moved += _append_moves(index, writer, chunk, max_file_size)
                chunk, chunk_bytes = [], 0
        if chunk:
            report.moved += _append_moves(index, writer, chunk, max_file_size)
        report.compacted.append(n)
        log.info("journal: moved %d live message(s) out of %s", len(entries), data_name(n))


def _append_moves(index: Index, writer: Writer, moves: list[Move], max_file_size: int) -> int:
    if writer.size >= max_file_size:
        writer.rotate()
    record = encode_batch(moves)
    offset = writer.append(record)
    loc = Location(writer.number, offset, len(record))
    for move in moves:
        index.relocate(move.queue, move.message.message_id, loc)
    return len(moves)


def deletable(index: Index, writer: Writer, checkpoint_file: int) -> list[int]:
    """Files before the checkpoint position that hold no live message."""
    return [
        n for n in sorted(writer.ends) if n < checkpoint_file and n != writer.number and not index.live.get(n)
    ]


def delete(directory: Path, writer: Writer, files: list[int], report: CleanupReport) -> None:
    for n in files:
        data_path(directory, n).unlink(missing_ok=True)
        writer.ends.pop(n, None)
        report.deleted.append(n)
    if files:
        log.info("journal: deleted %s", ", ".join(data_name(n) for n in files))
