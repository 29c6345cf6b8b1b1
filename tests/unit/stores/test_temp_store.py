"""The temporary store (stores/temp): its record format, its segment bookkeeping and its files,
on real files in a temporary directory; no broker, no sockets."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from stores.base import StoreCorrupted, StoredMessage, StoreError
from stores.reads import Location
from stores.temp import records
from stores.temp.fifo import CHUNK, LocationFifo
from stores.temp.files import TempStore
from stores.temp.segments import Segments


def message(i: int, size: int = 100) -> StoredMessage:
    return StoredMessage(f"ID:m-{i}", "/queue/q", {"priority": "4", "k": str(i)}, bytes([i % 256]) * size,
                         None if i % 2 else f"p-{i}")


# -- records ---------------------------------------------------------------------------------------


def test_a_record_round_trips_and_is_exactly_its_length() -> None:
    original = message(7, 1000)
    record = records.encode(original)
    assert records.decode(record, "here") == original
    with pytest.raises(StoreCorrupted, match="here"):
        records.decode(record + b"\0", "here")


def test_a_damaged_record_is_refused_naming_where() -> None:
    record = bytearray(records.encode(message(1)))
    record[-1] ^= 0xFF
    with pytest.raises(StoreCorrupted, match=r"seg@40: checksum mismatch"):
        records.decode(bytes(record), "seg@40")


def test_a_torn_tail_ends_the_scan_after_the_intact_records() -> None:
    data = b"".join(records.encode(message(i)) for i in range(5))
    torn = data[:-30]
    found = records.scan(torn)
    assert [m for _, m in found.messages] == [message(i) for i in range(4)]
    assert found.bad == sum(len(records.encode(message(i))) for i in range(4))
    assert "runs past the end" in found.reason
    clean = records.scan(data)
    assert clean.bad is None and len(clean.messages) == 5


# -- segments --------------------------------------------------------------------------------------


def test_records_fill_a_segment_then_open_the_next_and_an_oversized_one_gets_its_own() -> None:
    segments = Segments(1000)
    placed = [segments.place(400) for _ in range(3)]
    assert [(loc.file, loc.offset, new) for loc, new in placed] == [(1, 0, True), (1, 400, False),
                                                                        (2, 0, True)]
    big, new = segments.place(5000)
    assert (big.file, big.offset, new) == (3, 0, True)
    assert segments.bytes == 6200 and len(segments) == 3


def test_a_segment_is_deleted_once_every_record_in_it_is_dead_the_current_one_too() -> None:
    segments = Segments(1000)
    a, b, c = (segments.place(400)[0] for _ in range(3))
    assert segments.release([a]) == []
    assert segments.release([b]) == [1]
    assert segments.bytes == 400
    assert segments.release([c]) == [2]  # the current segment: the next record opens a new one
    assert segments.bytes == 0 and len(segments) == 0
    assert segments.place(10)[0] == Location(3, 0, 10)


# -- the per-queue FIFO of locations -------------------------------------------------------------


def test_the_fifo_gives_locations_back_in_order_across_chunks_with_their_sequence_numbers() -> None:
    fifo = LocationFifo()
    placed = [Location(i // 100, (i % 100) * 40_000_000, 1000 + i) for i in range(2 * CHUNK + 10)]
    assert [fifo.append(location) for location in placed[:5]] == [0, 1, 2, 3, 4]
    for location in placed[5:]:
        fifo.append(location)
    got = fifo.popleft(3)
    assert got == [(0, placed[0]), (1, placed[1]), (2, placed[2])]
    assert fifo.peek(CHUNK - 5, 4) == [(i + 3, placed[i + 3]) for i in range(CHUNK - 5, CHUNK - 1)]
    assert fifo.peek(len(placed) - 4, 10) == [(len(placed) - 1, placed[-1])]  # cut at the newest
    got += fifo.popleft(CHUNK)  # across the first chunk's end
    assert len(fifo) == len(placed) - 3 - CHUNK
    fifo.append(Location(9, 9, 9))
    got += fifo.clear()
    assert got == list(enumerate([*placed, Location(9, 9, 9)]))
    assert len(fifo) == 0 and fifo.popleft(5) == []
    assert fifo.append(Location(1, 2, 3)) == len(placed) + 1  # numbers go on after a clear
    with pytest.raises(ValueError, match="does not pack"):
        fifo.append(Location(1, 1 << 32, 3))


# -- files -----------------------------------------------------------------------------------------


def files_in(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


async def test_written_records_read_back_in_any_order_and_empty_segments_are_deleted(tmp_path: Path) -> None:
    directory = tmp_path / "tmp" / "b1"
    store = TempStore(directory, segment_size=4096)
    await store.open()
    placed = [store.append(message(i, 500)) for i in range(20)]
    for _, written in placed:
        await written
    locations = [location for location, _ in placed]
    assert len(files_in(directory)) == store.file_count >= 3
    assert sum(os.path.getsize(directory / name) for name in files_in(directory)) == store.bytes
    back = await store.read(locations[::-1])
    assert back == [message(i, 500) for i in range(19, -1, -1)]
    store.release(locations[:10])
    await store.read([])  # behind the deletions in the worker thread
    left = files_in(directory)
    assert 0 < len(left) < len(placed) and len(left) == store.file_count
    store.release(locations[10:])
    await store.read([])
    assert files_in(directory) == [] and store.bytes == 0
    await store.close()
    assert not directory.exists()


async def test_a_torn_record_reads_as_corrupted_and_its_neighbours_still_read(tmp_path: Path) -> None:
    store = TempStore(tmp_path / "t", segment_size=1 << 20)
    await store.open()
    placed = [store.append(message(i)) for i in range(3)]
    await placed[-1][1]
    path = store.files.path(1)
    with open(path, "r+b") as f:  # cut the last record short, as a crash mid-write would
        f.truncate(os.path.getsize(path) - 10)
    back = await store.read([location for location, _ in placed])
    assert back[:2] == [message(0), message(1)]
    assert isinstance(back[2], StoreCorrupted) and str(path) in str(back[2])
    await store.close()


async def test_open_wipes_what_an_earlier_broker_left(tmp_path: Path) -> None:
    directory = tmp_path / "tmp" / "b1"
    directory.mkdir(parents=True)
    (directory / "00000001.tmp").write_bytes(records.encode(message(1)))
    store = TempStore(directory)
    await store.open()
    assert files_in(directory) == []
    location, written = store.append(message(2))
    await written
    assert await store.read([location]) == [message(2)]
    await store.close()


async def test_an_abandoned_store_writes_and_removes_nothing_more(tmp_path: Path) -> None:
    store = TempStore(tmp_path / "t")
    await store.open()
    location, written = store.append(message(1))
    await written
    store.abandon()  # the lock is lost: the next master wipes what is left
    with pytest.raises(StoreError, match="closed"):
        store.append(message(2))
    assert files_in(tmp_path / "t") == ["00000001.tmp"] and store.failed is None


def test_entries_taken_from_the_middle_are_skipped_by_every_read_and_count() -> None:
    fifo = LocationFifo()
    model = [(fifo.append(Location(i, i, 100 + i)), Location(i, i, 100 + i)) for i in range(3 * CHUNK)]
    rng = random.Random(7)
    for _ in range(40):
        gone = {rng.randrange(fifo.first, fifo.first + 3 * CHUNK) for _ in range(rng.randrange(1, 200))}
        gone |= set(range(fifo.first, fifo.first + rng.randrange(0, 50)))  # a run at the head too
        taken = fifo.remove(gone)
        assert taken == [entry for entry in model if entry[0] in gone]
        assert fifo.remove(gone) == []  # taken once
        model = [entry for entry in model if entry[0] not in gone]
        assert len(fifo) == len(model)
        start = rng.randrange(0, len(model) + 5)
        assert fifo.peek(start, 300) == model[start:start + 300]
        seq = rng.randrange(fifo.first, fifo.first + 3 * CHUNK)
        assert fifo.index(seq) == sum(1 for s, _ in model if s < seq)
        count = rng.randrange(0, 400)
        assert fifo.popleft(count) == model[:count]
        model = model[count:]
        for _ in range(count):
            location = Location(7, rng.randrange(1 << 20), 50)
            model.append((fifo.append(location), location))
    assert fifo.clear() == model and len(fifo) == 0 and fifo.popleft(1) == []
