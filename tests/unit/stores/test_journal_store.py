"""Journal-specific behaviour: rotation, checkpoints, torn tails, corruption, fencing, cleanup.

Small files (64 KiB) force rotation; damage is done to the real files on disk.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import struct
import time
from pathlib import Path

import crc32c
import msgpack
import pytest

from config.model import StoreSettings
from stores import pacing
from stores.base import AddMessage, StoreCorrupted, StoredMessage, StoreError
from stores.journal import checkpoint as ckpt
from stores.journal import layout
from stores.journal.index import Index
from stores.journal.records import HEADER_SIZE, encode_batch, iter_records
from stores.journal.store import JournalStore
from tests.helpers.faultfs import FaultFS
from tests.helpers.fences import EpochFence

KiB = 1024


def settings(**overrides: object) -> StoreSettings:
    values: dict[str, object] = {
        "journal_max_file_size": 64 * KiB,
        "checkpoint_interval": 60.0,
        "cleanup_interval": 60.0,
    }
    values.update(overrides)
    return StoreSettings(**values)


def msg(n: int, size: int = KiB, producer: str | None = None) -> StoredMessage:
    return StoredMessage(f"m{n}", "/queue/a", {"n": str(n)}, bytes([n % 251]) * size, producer)


async def open_store(directory: Path, epoch: int = 0, **overrides: object) -> tuple[JournalStore, list[str]]:
    store = JournalStore(directory, settings(**overrides), EpochFence(epoch) if epoch else None)
    recovered = await store.open()
    return store, [m.message_id for m in recovered.queues.get("/queue/a", [])]


async def reopen_ids(directory: Path, **overrides: object) -> list[str]:
    store, ids = await open_store(directory, **overrides)
    await store.close()
    return ids


async def fill(store: JournalStore, numbers: range, size: int = KiB) -> None:
    for n in numbers:
        await store.enqueue("/queue/a", msg(n, size))


def files(directory: Path) -> list[int]:
    return list(layout.data_files(directory))


async def test_data_files_rotate_at_the_size_limit(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path)
    await fill(store, range(200))
    stats = await store.stats()
    await store.close()
    numbers = files(tmp_path)
    assert len(numbers) >= 3 and stats.files == len(numbers) and stats.messages == 200
    for n in numbers[:-1]:  # a group may overshoot the limit by itself, no more
        assert (tmp_path / f"db-{n}.log").stat().st_size < 64 * KiB + 2 * KiB
    assert await reopen_ids(tmp_path) == [f"m{n}" for n in range(200)]


async def test_recovery_replays_only_records_after_the_checkpoint(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path)
    await fill(store, range(150))
    await store.checkpoint()
    await fill(store, range(150, 155))
    await store.remove("/queue/a", "m3")
    # Simulate a crash: no checkpoint on close, so the tail must be replayed.
    store._checkpoint = lambda: None  # type: ignore[method-assign]
    await store.close()
    store2, ids = await open_store(tmp_path)
    assert store2.last_recovery is not None
    assert store2.last_recovery.records_replayed == 6  # 5 adds + 1 remove, none of the 150 before
    assert ids == [f"m{n}" for n in range(155) if n != 3]
    await store2.close()
    # Without any checkpoint (and db-1.log still present) the whole journal is replayed.
    for path in layout.checkpoints(tmp_path).values():
        path.unlink()
    store3, ids = await open_store(tmp_path)
    assert store3.last_recovery is not None and store3.last_recovery.records_replayed >= 156
    assert ids == [f"m{n}" for n in range(155) if n != 3]
    await store3.close()


async def test_background_checkpoint_runs_on_its_interval(tmp_path: Path) -> None:
    import asyncio

    store, _ = await open_store(tmp_path, checkpoint_interval=0.05)
    await fill(store, range(3))
    before = store._checkpoint_pos
    for _ in range(100):
        if store._checkpoint_pos != before:
            break
        await asyncio.sleep(0.02)
    assert store._checkpoint_pos != before
    await store.close()


async def test_background_checkpoints_of_a_large_index_are_paced_by_their_cost(tmp_path: Path) -> None:
    """With an interval far below what a checkpoint of 100k messages costs, maintenance leaves
    the gap stores/pacing.py asks for instead of checkpointing back to back (a fifth of the CPU
    at ten million, every 5 s): counted on the real store while it keeps changing."""
    store, _ = await open_store(tmp_path, journal_max_file_size=64 * 1024 * KiB, checkpoint_interval=0.001)
    for start in range(0, 100_000, 5000):
        await store.write([AddMessage("/queue/a", StoredMessage(f"m{n}", "/queue/a", {}, b"x"))
                           for n in range(start, start + 5000)])
    spans: list[float] = []
    write = store._write_checkpoint

    def timed(snapshot: ckpt.Checkpoint) -> None:
        began = time.perf_counter()
        write(snapshot)
        spans.append(time.perf_counter() - began)

    store._write_checkpoint = timed  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    began, n = loop.time(), 100_000
    while loop.time() - began < 1.5:  # keeps the index dirty
        await store.enqueue("/queue/a", StoredMessage(f"m{n}", "/queue/a", {}, b"x"))
        n += 1
        await asyncio.sleep(0.005)
    elapsed = loop.time() - began
    await store.close()
    assert spans, "no checkpoint ran at all"
    # Unpaced, one would follow another every millisecond and take most of the time; paced, 5%
    # of it (the bound leaves room for a busy machine and for the checkpoint on close).
    assert pacing.MAX_SHARE <= 0.05 and sum(spans) / elapsed < 0.2, (len(spans), sum(spans), elapsed)


async def test_group_commits_go_on_while_a_checkpoint_file_is_written(tmp_path: Path) -> None:
    import asyncio

    store, _ = await open_store(tmp_path, journal_max_file_size=64 * 1024 * KiB)
    count = 50_000  # a checkpoint of this many entries takes tens of ms to encode, a commit one
    for start in range(0, count, 5000):
        await store.write([AddMessage("/queue/a", StoredMessage(f"m{n}", "/queue/a", {}, b"x"))
                           for n in range(start, start + 5000)])
    checkpoint = asyncio.ensure_future(store.checkpoint())
    for _ in range(1000):  # until the writer thread has taken the snapshot: its file is under way
        if store._writing is not None:
            break
        await asyncio.sleep(0.001)
    await store.enqueue("/queue/a", msg(count))  # a commit, not queued behind the checkpoint
    assert not checkpoint.done()
    await checkpoint
    store._checkpoint = lambda: None  # type: ignore[method-assign]  # a crash: no checkpoint on close
    await store.close()
    store2, ids = await open_store(tmp_path)
    assert store2.last_recovery is not None and store2.last_recovery.records_replayed == 1
    assert len(ids) == count + 1 and ids[-1] == f"m{count}"
    await store2.close()


async def test_close_waits_for_a_checkpoint_under_way(tmp_path: Path) -> None:
    import asyncio

    store, _ = await open_store(tmp_path, journal_max_file_size=64 * 1024 * KiB)
    await store.write([AddMessage("/queue/a", StoredMessage(f"m{n}", "/queue/a", {}, b"x"))
                       for n in range(50_000)])
    checkpoint = asyncio.ensure_future(store.checkpoint())
    await asyncio.sleep(0)
    await store.close()  # the same checkpoint file: written by one of them at a time
    await checkpoint
    assert not list(tmp_path.glob("checkpoint-*.tmp"))
    store2, ids = await open_store(tmp_path)
    assert store2.last_recovery is not None and store2.last_recovery.records_replayed == 0
    assert len(ids) == 50_000
    await store2.close()


async def test_producer_ids_come_from_checkpoint_and_tail(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path, duplicate_window=4)
    for n in range(3):
        await store.enqueue("/queue/a", msg(n, producer=f"p{n}"))
    await store.checkpoint()
    for n in range(3, 6):
        await store.enqueue("/queue/a", msg(n, producer=f"p{n}"))
    for n in range(6):
        await store.remove("/queue/a", f"m{n}")
    store._checkpoint = lambda: None  # type: ignore[method-assign]
    await store.close()
    store2 = JournalStore(tmp_path, settings(duplicate_window=4))
    recovered = await store2.open()
    assert recovered.producer_ids == ["p2", "p3", "p4", "p5"]
    await store2.close()


def _last_file(directory: Path) -> Path:
    return list(layout.data_files(directory).values())[-1]


def _record_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    return [r.offset for r in iter_records(data, 0, len(data))]


async def _prepare_tail(tmp_path: Path) -> Path:
    """A journal whose last file ends with several BATCH records (no checkpoint covers them)."""
    store, _ = await open_store(tmp_path)
    await fill(store, range(5))
    store._checkpoint = lambda: None  # type: ignore[method-assign]
    await store.close()
    return _last_file(tmp_path)


async def test_partial_last_record_is_truncated_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = await _prepare_tail(tmp_path)
    last = _record_offsets(path)[-1]
    size = path.stat().st_size
    os.truncate(path, size - 100)
    with caplog.at_level(logging.WARNING):
        ids = await reopen_ids(tmp_path)
    assert ids == ["m0", "m1", "m2", "m3"]
    assert path.stat().st_size == last
    assert f"torn tail in {path.name} at offset {last}" in caplog.text
    assert f"{size - 100 - last} bytes dropped" in caplog.text


async def test_crc_failed_last_record_is_truncated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = await _prepare_tail(tmp_path)
    last = _record_offsets(path)[-1]
    with open(path, "r+b") as f:
        f.seek(last + HEADER_SIZE + 20)
        byte = f.read(1)
        f.seek(last + HEADER_SIZE + 20)
        f.write(bytes([byte[0] ^ 0xFF]))
    with caplog.at_level(logging.WARNING):
        assert await reopen_ids(tmp_path) == ["m0", "m1", "m2", "m3"]
    assert f"torn tail in {path.name} at offset {last}" in caplog.text


async def test_corrupt_record_followed_by_valid_ones_is_refused(tmp_path: Path) -> None:
    path = await _prepare_tail(tmp_path)
    second = _record_offsets(path)[2]  # [0] is the SEAL
    before = path.read_bytes()
    with open(path, "r+b") as f:
        f.seek(second + HEADER_SIZE + 30)
        f.write(b"\xee\xee")
    with pytest.raises(StoreCorrupted) as raised:
        await JournalStore(tmp_path, settings()).open()
    assert raised.value.where == f"{path.name}@{second}"
    assert len(path.read_bytes()) == len(before), "a refused store must not be truncated"


async def test_corrupt_record_in_an_older_file_is_refused(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path)
    await fill(store, range(120))
    store._checkpoint = lambda: None  # type: ignore[method-assign]
    await store.close()
    # Remove every checkpoint so that the first file is replayed, then damage its LAST record.
    for path in layout.checkpoints(tmp_path).values():
        path.unlink()
    first = layout.data_files(tmp_path)[1]
    last = _record_offsets(first)[-1]
    intact = first.read_bytes()
    with open(first, "r+b") as f:  # a CRC failure in the last record of a file that is not last
        f.seek(len(intact) - 1)
        f.write(bytes([intact[-1] ^ 0x55]))
    with pytest.raises(StoreCorrupted) as raised:
        await JournalStore(tmp_path, settings()).open()
    assert raised.value.where == f"db-1.log@{last}"
    os.truncate(first, len(intact) - 3)  # shorter than the end its successor's SEAL records
    with pytest.raises(StoreCorrupted) as raised:
        await JournalStore(tmp_path, settings()).open()
    assert raised.value.where == f"db-1.log@{len(intact) - 3}"


async def test_damaged_checkpoint_is_refused_not_ignored(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path)
    await fill(store, range(3))
    await store.close()
    path = next(iter(layout.checkpoints(tmp_path).values()))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupted) as raised:
        await JournalStore(tmp_path, settings()).open()
    assert raised.value.where == path.name


def version_1(cp: ckpt.Checkpoint) -> bytes:
    """`cp` as a broker before the packed columns wrote it (FORMAT.md section 3, version 1)."""
    index = Index(0)
    index.load(cp.prefixes, cp.queues)
    queues = [[q, [[mid, *loc] for mid, loc in entries.items()]] for q, entries in index.queues.items()]
    files = [[n, end] for n, end in sorted(cp.files.items())]
    body = {"epoch": cp.epoch, "pos": list(cp.pos), "files": files, "queues": queues,
            "subs": [s.fields() for s in cp.subscriptions], "producers": cp.producers}
    payload = msgpack.packb(body, use_bin_type=True)
    return ckpt.MAGIC_V1 + struct.pack("<II", crc32c.crc32c(payload), len(payload)) + payload


async def test_a_data_directory_of_the_previous_checkpoint_version_opens(tmp_path: Path) -> None:
    # An upgrade: the checkpoint is version 1 and no record after it is replayed (no journal tail).
    store, _ = await open_store(tmp_path)
    await fill(store, range(40))
    for n in (7, 3):  # an id out of order (an extra) and one of no counter
        await store.enqueue("/queue/b", msg(n))
    await store.enqueue("/queue/b", StoredMessage("no-counter", "/queue/b", {}, b"x"))
    await store.close()
    path = next(iter(layout.checkpoints(tmp_path).values()))
    path.write_bytes(version_1(ckpt.decode(path.read_bytes())))
    store = JournalStore(tmp_path, settings())
    recovered = await store.open()
    assert [m.message_id for m in recovered.queues["/queue/a"]] == [f"m{n}" for n in range(40)]
    assert [m.message_id for m in recovered.queues["/queue/b"]] == ["m7", "m3", "no-counter"]
    await store.close()
    assert path.read_bytes().startswith(ckpt.MAGIC)  # written back as this version
    assert await reopen_ids(tmp_path) == [f"m{n}" for n in range(40)]


async def test_a_checkpoint_of_a_newer_version_is_refused_by_name(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path)
    await fill(store, range(3))
    await store.close()
    path = next(iter(layout.checkpoints(tmp_path).values()))
    path.write_bytes(b"BMQJCKP4" + path.read_bytes()[8:])
    with pytest.raises(StoreCorrupted, match="version 4"):
        await JournalStore(tmp_path, settings()).open()


async def test_deposed_master_writes_after_takeover_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, _ = await open_store(tmp_path, epoch=1)
    await fill(old, range(3))
    old_file = old._writer.file.path  # type: ignore[union-attr]
    new, ids = await open_store(tmp_path, epoch=2)
    assert ids == ["m0", "m1", "m2"]
    assert new._writer.number > int(old_file.stem.split("-")[1])  # type: ignore[union-attr]
    # The deposed master, unaware, goes on: through its own store, and with a raw append.
    await old.enqueue("/queue/a", msg(100))
    with open(old_file, "ab") as f:
        f.write(encode_batch([AddMessage("/queue/a", msg(101))]))
    await new.enqueue("/queue/a", msg(3))
    await new.close()
    old._checkpoint = lambda: None  # type: ignore[method-assign]  # its fence would refuse
    await old.close()
    third, ids = await open_store(tmp_path, epoch=3)
    await third.close()
    assert ids == ["m0", "m1", "m2", "m3"]
    # Without checkpoints the old file is replayed: its SEAL'd end, not its size, is honoured.
    for path in layout.checkpoints(tmp_path).values():
        path.unlink()
    with caplog.at_level(logging.WARNING):
        fourth, ids = await open_store(tmp_path, epoch=4)
    await fourth.close()
    assert ids == ["m0", "m1", "m2", "m3"]
    assert f"{old_file.name}: ignoring" in caplog.text and "beyond its sealed end" in caplog.text


async def test_older_epoch_cannot_open_over_a_newer_one(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path, epoch=5)
    await store.close()
    with pytest.raises(StoreError, match="newer master"):
        await open_store(tmp_path, epoch=4)


async def test_cleanup_moves_an_old_message_forward_and_deletes_old_files(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path)
    await fill(store, range(300))  # about five 64 KiB files
    for n in range(1, 300):
        await store.remove("/queue/a", f"m{n}")
    before = files(tmp_path)
    assert len(before) >= 5
    report = await store.cleanup()
    after = files(tmp_path)
    assert report.moved == 1 and before[0] in report.compacted
    assert after == [n for n in before if n >= before[-1]] or len(after) <= 2
    assert before[0] not in after
    await store.enqueue("/queue/a", msg(300))
    await store.close()
    assert await reopen_ids(tmp_path) == ["m0", "m300"]
    assert len(files(tmp_path)) <= 3


async def test_cleanup_keeps_files_with_many_live_messages(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path)
    await fill(store, range(200))
    for n in range(0, 200, 2):
        await store.remove("/queue/a", f"m{n}")
    before = files(tmp_path)
    report = await store.cleanup()
    assert report.moved == 0 and report.deleted == [] and files(tmp_path) == before
    await store.close()
    assert await reopen_ids(tmp_path) == [f"m{n}" for n in range(1, 200, 2)]


async def test_disk_full_fails_the_group_and_the_store_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = FaultFS().install(monkeypatch)
    store, _ = await open_store(tmp_path)
    await fill(store, range(2))
    path = store._writer.file.path  # type: ignore[union-attr]
    size = path.stat().st_size
    fs.fail_appends(errno.ENOSPC)
    with pytest.raises(StoreError):
        await store.enqueue("/queue/a", msg(2))
    assert path.stat().st_size == size, "the half-written group was not cut back"
    assert (await store.stats()).messages == 2
    fs.clear_faults()
    fs.fail_syncs(errno.EIO)
    with pytest.raises(StoreError):
        await store.enqueue("/queue/a", msg(3))
    assert path.stat().st_size == size
    fs.clear_faults()
    await store.enqueue("/queue/a", msg(4))
    await store.close()
    assert await reopen_ids(tmp_path) == ["m0", "m1", "m4"]


async def test_every_reopen_starts_a_new_file_and_unneeded_ones_are_deleted(tmp_path: Path) -> None:
    for n in range(4):
        store, ids = await open_store(tmp_path)
        assert ids == [f"m{i}" for i in range(n)]
        await store.enqueue("/queue/a", msg(n))
        await store.close()
    numbers = files(tmp_path)
    assert numbers[-1] == 4 and len(numbers) == 4  # each file still holds a live message
    store, _ = await open_store(tmp_path)
    for n in range(4):
        await store.remove("/queue/a", f"m{n}")
    await store.close()
    store, _ = await open_store(tmp_path)
    await store.close()
    assert files(tmp_path) == [6]


class CheckpointAside(JournalStore):
    checkpoint_aside_at = 1  # every open with a live message counts as large


async def test_a_large_open_leaves_its_checkpoint_and_deletions_to_maintenance(tmp_path: Path) -> None:
    store, _ = await open_store(tmp_path, epoch=1)
    await fill(store, range(200))
    for n in range(150):
        await store.remove("/queue/a", f"m{n}")
    await store.close()
    emptied = [n for n in files(tmp_path) if n < 3]  # m0..m149 filled the first files
    assert emptied == [1, 2]
    store = CheckpointAside(tmp_path, settings(), EpochFence(2))
    recovered = await store.open()
    assert [m.message_id for m in recovered.queues["/queue/a"]][:2] == ["m150", "m151"]
    assert list(layout.checkpoints(tmp_path)) == [1] and set(emptied) <= set(files(tmp_path))
    for _ in range(1000):  # maintenance writes it at once, not checkpoint_interval (60 s) later
        if list(layout.checkpoints(tmp_path)) == [2] and not set(emptied) & set(files(tmp_path)):
            break
        await asyncio.sleep(0.01)
    assert list(layout.checkpoints(tmp_path)) == [2] and not set(emptied) & set(files(tmp_path))
    assert (await store.read("/queue/a", "m199")) == msg(199)
    await store.close()
    assert await reopen_ids(tmp_path) == [f"m{n}" for n in range(150, 200)]
