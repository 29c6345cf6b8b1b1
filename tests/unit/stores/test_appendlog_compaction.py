"""Compaction of the append log, and recovery from a crash or an I/O error at each of its steps."""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
from pathlib import Path

import pytest

from config.model import StoreSettings
from stores import fsio
from stores.appendlog import records
from stores.appendlog.records import Frame, RecordType
from stores.appendlog.segments import list_segments, segment_name
from stores.appendlog.store import AppendLogStore
from stores.base import AddMessage, Recovered, RemoveMessage, StoredMessage

SEGMENT = 64 * 1024
KEEP = [3, 150, 297]  # survivors of each workload


def settings(**overrides: object) -> StoreSettings:
    values: dict[str, object] = {
        "type": "appendlog",
        "appendlog_segment_size": SEGMENT,
        "duplicate_window": 20,
    }
    return StoreSettings(**(values | overrides))  # type: ignore[arg-type]


def msg(n: int) -> StoredMessage:
    return StoredMessage(f"m{n}", "/queue/a", {"n": str(n)}, b"x" * 1024, f"p{n}")


async def opened(path: Path, **overrides: object) -> tuple[AppendLogStore, Recovered]:
    store = AppendLogStore(path, settings(**overrides))
    return store, await store.open()


def frames(path: Path) -> list[Frame]:
    data = path.read_bytes()
    return [f for f in records.iter_frames(data, 0, len(data)) if isinstance(f, Frame)]


def types_on_disk(path: Path) -> list[RecordType]:
    return [f.type for n in list_segments(path) for f in frames(path / segment_name(n))]


def assert_survivors(recovered: Recovered) -> None:
    assert [m.message_id for m in recovered.queues["/queue/a"]] == [f"m{i}" for i in KEEP]
    assert recovered.producer_ids == [f"p{i}" for i in range(280, 300)]  # outlive their messages


async def churn(store: AppendLogStore) -> None:
    """~300 KiB written, 3 messages left live."""
    for start in range(0, 300, 10):
        await store.write([AddMessage("/queue/a", msg(i)) for i in range(start, start + 10)])
        await store.write(
            [RemoveMessage("/queue/a", f"m{i}") for i in range(start, start + 10) if i not in KEEP]
        )


async def settle(store: AppendLogStore) -> None:
    for _ in range(500):  # a compaction of a few KiB takes milliseconds
        if store._compaction is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("compaction did not finish in 5 s")


async def test_compaction_reclaims_space_and_keeps_state_and_duplicate_window(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    await churn(store)
    await settle(store)
    stats = await store.stats()
    assert stats.messages == 3 and stats.bytes < SEGMENT
    await store.close()
    assert RecordType.SNAP_END in types_on_disk(tmp_path)
    store, recovered = await opened(tmp_path)
    assert_survivors(recovered)
    await store.enqueue("/queue/a", msg(1000))
    await store.close()
    store, recovered = await opened(tmp_path)
    assert [m.message_id for m in recovered.queues["/queue/a"]][-1] == "m1000"
    await store.close()


async def uncompacted_then_compacted(tmp_path: Path) -> tuple[Path, Path]:
    """The same log twice: as it was before compaction (copy) and compacted in place."""
    store, _ = await opened(tmp_path / "log", appendlog_compact_live_fraction=0.001)  # never compacts
    await churn(store)
    await store.close()
    shutil.copytree(tmp_path / "log", tmp_path / "before")
    store, _ = await opened(tmp_path / "log")  # the check at open compacts
    await settle(store)
    await store.close()
    assert RecordType.SNAP_END in types_on_disk(tmp_path / "log")
    return tmp_path / "before", tmp_path / "log"


async def test_crash_after_the_snapshot_but_before_deleting_old_segments(tmp_path: Path) -> None:
    before, log = await uncompacted_then_compacted(tmp_path)
    restored = [p.name for p in before.iterdir() if not (log / p.name).exists()]
    assert restored
    for name in restored:
        shutil.copy(before / name, log / name)
    store, recovered = await opened(log)
    assert_survivors(recovered)
    assert not any((log / name).exists() for name in restored)  # deleted now, the snapshot being durable
    await store.close()


async def test_crash_before_the_snapshot_was_complete(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before, log = await uncompacted_then_compacted(tmp_path)
    for path in before.iterdir():
        if not (log / path.name).exists():
            shutil.copy(path, log / path.name)
    base = next(
        n
        for n in list_segments(log)
        if RecordType.SNAP_BEGIN in [f.type for f in frames(log / segment_name(n))]
    )
    for n in list_segments(log):
        if n > base:
            (log / segment_name(n)).unlink()
    snapshot = log / segment_name(base)
    end = next(f for f in frames(snapshot) if f.type is RecordType.SNAP_END)
    with open(snapshot, "r+b") as f:
        f.truncate(end.offset - 2)  # the crash tore the last chunk and SNAP_END never arrived
    with caplog.at_level(logging.WARNING):
        store, recovered = await opened(log, appendlog_compact_live_fraction=0.001)
    assert "incomplete compaction snapshot" in caplog.text and "torn tail" in caplog.text
    assert_survivors(recovered)
    await store.close()


class FullDisk(fsio.AppendFile):
    """A real file that refuses snapshot chunks, as a disk filling up during compaction would."""

    def append(self, data: bytes) -> int:
        if len(data) > 8 and data[8] == RecordType.SNAP_MESSAGES:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return super().append(data)


async def test_a_failed_compaction_leaves_a_usable_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(fsio, "open_append", FullDisk)
    store, _ = await opened(tmp_path)
    with caplog.at_level(logging.ERROR):
        await churn(store)
        await settle(store)
    assert "compaction failed" in caplog.text
    await store.enqueue("/queue/a", msg(1000))
    await store.close()
    monkeypatch.setattr(fsio, "open_append", fsio.AppendFile)
    store, recovered = await opened(tmp_path, appendlog_compact_live_fraction=0.001)
    assert [m.message_id for m in recovered.queues["/queue/a"]] == [f"m{i}" for i in [*KEEP, 1000]]
    await store.close()
