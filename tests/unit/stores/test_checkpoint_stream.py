"""The journal's version 3 checkpoint read as a stream (stores/journal/checkpoint.py `reading`): the
index it builds a block at a time is the one a whole decode gives, damage anywhere is refused, and
the read never holds the file or a copy of its columns."""

from __future__ import annotations

import struct
import tracemalloc
from array import array
from pathlib import Path

import crc32c
import msgpack
import pytest

from stores.entries import Prefixes, QueueEntries
from stores.journal import checkpoint as ckpt
from stores.journal.index import Index, Location


def message_id(n: int, prefix: str, extras: int) -> str:
    """A keyed id, or an extra (a counter with a leading zero) every `extras`."""
    return f"q-0{n}" if n % extras == 2 else f"{prefix}{n}"


def checkpoint(sizes: tuple[int, ...], extras: int = 4) -> ckpt.Checkpoint:
    prefixes = Prefixes()
    queues = [ckpt.columns(prefixes, f"/queue/{size}",
                           [message_id(n, f"ID:b{q}-", extras) for n in range(size)],
                           [Location(n % 5 + 1, n * 100, 90 + n % 7) for n in range(size)])
              for q, size in enumerate(sizes)]
    return ckpt.Checkpoint(epoch=3, pos=(5, 77), files={1: 100, 5: None}, queues=queues,
                           producers=["p1"], prefixes=prefixes.names, records=({1: (2, 180)}, {}))


def loaded(cp: ckpt.Checkpoint) -> list[tuple[str, list[tuple[str, Location]], list[int | None]]]:
    index = Index(0)
    index.load(cp.prefixes, cp.loading(), cp.records)
    return [(q, list(e.items()), [e.position(m) for m in list(e)[::97]]) for q, e in index.queues.items()]


def test_a_streamed_read_loads_the_index_a_whole_decode_gives(tmp_path: Path) -> None:
    block = QueueEntries.BLOCK
    cp = checkpoint((1, block - 1, block, block + 1, 3 * block + 5))
    ckpt.write(tmp_path / "cp", cp)
    whole = loaded(ckpt.decode((tmp_path / "cp").read_bytes()))
    with ckpt.reading(tmp_path / "cp") as streamed:
        assert (streamed.epoch, streamed.pos, streamed.producers) == (3, (5, 77), ["p1"])
        assert loaded(streamed) == whole
    assert [len(items) for _, items, _ in whole] == [1, block - 1, block, block + 1, 3 * block + 5]


def test_queues_left_unread_are_still_read_and_checked(tmp_path: Path) -> None:
    ckpt.write(tmp_path / "cp", checkpoint((2000, 3000)))
    data = bytearray((tmp_path / "cp").read_bytes())
    data[-5] ^= 0x40  # the last queue's last chunk
    (tmp_path / "cp").write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="CRC"), ckpt.reading(tmp_path / "cp") as cp:
        next(iter(cp.loading()))  # the first queue only


@pytest.mark.parametrize("cut", [1, 100, 5000])
def test_a_truncated_or_damaged_checkpoint_is_refused_by_its_frame(tmp_path: Path, cut: int) -> None:
    ckpt.write(tmp_path / "cp", checkpoint((3000,)))
    data = (tmp_path / "cp").read_bytes()
    (tmp_path / "cp").write_bytes(data[:-cut])
    with pytest.raises(ckpt.CheckpointError, match="header says"), ckpt.reading(tmp_path / "cp") as cp:
        loaded(cp)
    damaged = bytearray(data)
    damaged[len(data) - cut] ^= 0x08
    (tmp_path / "cp").write_bytes(bytes(damaged))
    with pytest.raises(ckpt.CheckpointError, match="CRC"), ckpt.reading(tmp_path / "cp") as cp:
        loaded(cp)


def v3(prefixes: list[str], chunks: list[list[int]], extras: list[list[object]],
       count: int | None = None, last: str = "queues") -> bytes:
    """A version 3 checkpoint of one queue whose keys are `chunks` (FORMAT.md section 3)."""
    body: dict[str, object] = {"epoch": 1, "pos": [1, 0], "files": [[1, None]], "prefixes": prefixes,
                               "held": [], "shared": [], "subs": [], "producers": []}
    total = sum(map(len, chunks)) if count is None else count
    body["queues"] = [["/queue/a", total, extras,
                       [[array("q", keys).tobytes(), array("q", [1 << 40] * len(keys)).tobytes(),
                         array("I", [9] * len(keys)).tobytes()] for keys in chunks]]]
    if last != "queues":
        body[last] = body.pop(last)
    payload = msgpack.packb(body, use_bin_type=True)
    return ckpt.MAGIC + struct.pack("<II", crc32c.crc32c(payload), len(payload)) + payload


@pytest.mark.parametrize(("chunks", "extras", "count", "last", "fault"), [
    ([[0, 2], [1]], [], None, "queues", "not increasing"),  # across chunks
    ([[0, 2, 2]], [], None, "queues", "not increasing"),
    ([[0], [1 << 40]], [], None, "queues", "out of range"),
    ([[0, 1], [5, 6]], [[3, "m0"]], None, "queues", "repeated"),  # an extra that is a keyed id
    ([[0, 1, 1]], [[2, "x"], [1, "y"]], None, "queues", "out of order"),
    ([[0, 1]], [[1, "x"], [2, "y"]], None, "queues", "out of order or range"),
    ([[0, 1]], [[0, "x"], [1, "x"]], None, "queues", "repeated"),
    ([[0, 1], [2]], [], 4, "queues", "hold 3 messages, not 4"),
    ([[0, 1], [2]], [], 2, "queues", "differ in length"),
    ([[0]], [], None, "producers", "not the checkpoint's last field"),
])
def test_a_damaged_version_3_queue_is_refused(tmp_path: Path, chunks: list[list[int]],
                                              extras: list[list[object]], count: int | None,
                                              last: str, fault: str) -> None:
    good = ckpt.decode(v3(["m"], [[0, 1], [2]], [[1, "x"]]))
    assert [packed.extras for _, packed in good.queues] == [[(1, "x")]]
    data = v3(["m"], chunks, extras, count, last)
    with pytest.raises(ckpt.CheckpointError, match=fault):
        ckpt.decode(data)
    (tmp_path / "cp").write_bytes(data)
    with pytest.raises(ckpt.CheckpointError, match=fault), ckpt.reading(tmp_path / "cp") as cp:
        loaded(cp)


def test_reading_holds_neither_the_file_nor_a_copy_of_its_columns(tmp_path: Path) -> None:
    ckpt.write(tmp_path / "cp", checkpoint((150_000, 50_000), extras=1000))  # a broker's own ids
    size = (tmp_path / "cp").stat().st_size
    index = Index(0)
    tracemalloc.start()
    try:
        with ckpt.reading(tmp_path / "cp") as cp:
            index.load(cp.prefixes, cp.loading(), cp.records)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert index.messages == 200_000
    # The index itself is about 13 bytes a message (the file: 20); a read of the whole file, or a
    # column of it, on top of that would be at least the file's size more.
    assert peak - held < size / 4, (peak, held, size)
    assert peak < size, (peak, held, size)


def test_a_follower_reads_only_the_leading_fields_and_checks_the_frame(tmp_path: Path) -> None:
    ckpt.write(tmp_path / "cp", checkpoint((5000,)))
    fields = ckpt.leading_fields(tmp_path / "cp", ("epoch", "pos", "files"))
    assert fields == {"epoch": 3, "pos": [5, 77], "files": [[1, 100], [5, None]]}
    data = bytearray((tmp_path / "cp").read_bytes())
    data[-2] ^= 1
    (tmp_path / "cp").write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="CRC"):
        ckpt.leading_fields(tmp_path / "cp", ("epoch", "pos", "files"))
