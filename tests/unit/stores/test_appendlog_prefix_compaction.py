"""Compactions that replace only a prefix of the append log (a drained backlog's dead segments),
keep the segments after it, and recover from a crash at each step (FORMAT.md, "Compaction")."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from config.model import StoreSettings
from stores.appendlog import compaction, records
from stores.appendlog.records import Frame, RecordType
from stores.appendlog.segments import begins_inside_snapshot, delete_segments, list_segments, segment_name
from stores.appendlog.store import AppendLogStore
from stores.base import AddMessage, Recovered, RemoveMessage, StoreCorrupted, StoredMessage

SEGMENT = 64 * 1024
COUNT = 600  # ~10 segments of 1 KiB messages


def settings(**overrides: object) -> StoreSettings:
    values: dict[str, object] = {"type": "appendlog", "appendlog_segment_size": SEGMENT,
                                 "duplicate_window": 20}
    return StoreSettings(**(values | overrides))  # type: ignore[arg-type]


def msg(n: int, queue: str = "/queue/a") -> StoredMessage:
    return StoredMessage(f"m{n:05d}", queue, {"n": str(n)}, b"x" * 1024, f"p{n}")


async def opened(path: Path, **overrides: object) -> tuple[AppendLogStore, Recovered]:
    store = AppendLogStore(path, settings(**overrides))
    return store, await store.open()


async def settle(store: AppendLogStore) -> None:
    for _ in range(500):
        if store._compaction is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("compaction did not finish in 5 s")


def snapshots(path: Path) -> list[tuple[int, int | None, int]]:
    """(base, keep, messages copied) of each complete snapshot on disk."""
    found: list[tuple[int, int | None, int]] = []
    for number in list_segments(path):
        data = (path / segment_name(number)).read_bytes()
        for frame in records.iter_frames(data, 0, len(data)):
            if not isinstance(frame, Frame):
                continue
            if frame.type is RecordType.SNAP_BEGIN:
                base, keep = records.decode_snap_begin(frame.payload, "test")
                found.append((base, keep, 0))
            elif frame.type is RecordType.SNAP_MESSAGES and found:
                _, messages = records.decode_snap_messages(frame.payload, "test")
                base, keep, copied = found[-1]
                found[-1] = (base, keep, copied + len(messages))
    return found


def ids(recovered: Recovered, queue: str = "/queue/a") -> list[str]:
    return [m.message_id for m in recovered.queues.get(queue, [])]


async def backlog_then_drain(store: AppendLogStore, drained: int, old: int | None = None) -> None:
    """COUNT messages, then the oldest `drained` consumed in acks of 10 (`old`, if given, stays)."""
    for start in range(0, COUNT, 20):
        await store.write([AddMessage("/queue/a", msg(i)) for i in range(start, start + 20)])
    for start in range(0, drained, 10):
        await store.write([RemoveMessage("/queue/a", msg(i).message_id)
                           for i in range(start, start + 10) if i != old])
        await settle(store)


def expected(drained: int, old: int | None = None) -> list[str]:
    return [msg(i).message_id for i in range(COUNT) if i >= drained or i == old]


async def test_a_drained_prefix_is_deleted_without_copying_the_backlog(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    await backlog_then_drain(store, 400)
    await store.close()
    done = snapshots(tmp_path)
    assert done and all(keep is not None for _, keep, _ in done)  # every one kept the backlog's segments
    assert sum(copied for _, _, copied in done) < 60  # the whole-log kind copies the ~300 live at its run
    on_disk = sum((tmp_path / segment_name(n)).stat().st_size for n in list_segments(tmp_path))
    assert on_disk < 2 * 200 * 1100  # the 200 left, at most twice over (the log written was ~650 KiB)
    store, recovered = await opened(tmp_path)
    assert ids(recovered) == expected(400)
    await store.close()


async def test_an_old_survivor_is_copied_and_keeps_its_place(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    await backlog_then_drain(store, 500, old=5)  # m00005 is copied by each compaction: it is the oldest
    await store.enqueue("/queue/a", msg(9000))
    await store.close()
    store, recovered = await opened(tmp_path)
    assert ids(recovered) == [*expected(500, old=5), msg(9000).message_id]
    await store.close()


async def prefix_compacted(tmp_path: Path) -> tuple[Path, Path]:
    """The same drained log twice: as it was (copy) and after the compaction at open."""
    store, _ = await opened(tmp_path / "log", appendlog_compact_live_fraction=0.0001)  # never compacts
    await backlog_then_drain(store, 400)
    await store.close()
    shutil.copytree(tmp_path / "log", tmp_path / "before")
    store, _ = await opened(tmp_path / "log")
    await settle(store)
    await store.close()
    assert [keep is not None for _, keep, _ in snapshots(tmp_path / "log")] == [True]
    return tmp_path / "before", tmp_path / "log"


async def test_crash_before_or_during_the_deletion_of_the_prefix(tmp_path: Path) -> None:
    before, log = await prefix_compacted(tmp_path)
    deleted = sorted(p.name for p in before.iterdir() if not (log / p.name).exists())
    assert len(deleted) >= 3
    deleted.sort(key=lambda name: int(name[4:-4]))
    for restored in (deleted, deleted[:-1]):  # none deleted yet; the newest deleted (deletion goes back)
        case = tmp_path / f"case{len(restored)}"
        shutil.copytree(log, case)
        for name in restored:
            shutil.copy(before / name, case / name)
        store, recovered = await opened(case)
        assert ids(recovered) == expected(400)
        assert not any((case / name).exists() for name in restored)  # replaced: deleted at open
        await store.close()


async def test_the_kept_segments_replay_under_a_later_full_snapshot(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    await backlog_then_drain(store, 400)
    await store.write([RemoveMessage("/queue/a", msg(i).message_id) for i in range(400, 590)])
    await settle(store)
    await store.close()
    store, recovered = await opened(tmp_path)
    assert ids(recovered) == expected(590)
    await store.close()


def test_the_prefix_chosen() -> None:
    segments = [(n, 100) for n in range(1, 11)]
    always = lambda _: True  # noqa: E731
    drained = {n: 100 for n in range(5, 11)} | {4: 80}
    assert compaction.prefix_to_replace(segments, drained, 5, 50, 0.5, always) == 3
    spread = {n: 30 for n in range(1, 11)}
    assert compaction.prefix_to_replace(segments, spread, 5, 50, 0.5, always) == 10
    busy = {n: 80 for n in range(1, 11)}
    assert compaction.prefix_to_replace(segments, busy, 5, 50, 0.5, always) == 0
    vetoed = compaction.prefix_to_replace(segments, drained, 5, 50, 0.5, lambda n: n != 4)
    assert vetoed == 4  # not kept from 4 (say it begins inside a snapshot): also replace it


def test_a_prefix_is_kept_from_only_where_its_messages_are_the_oldest() -> None:
    from stores.appendlog.state import LogState
    from stores.reads import Location

    state = LogState(0)
    for n, file in ((1, 1), (2, 2), (3, 3)):
        state.add("/queue/a", msg(n), Location(file, 100, 50))
    assert state.oldest_below(3)
    assert state.queues["/queue/a"].ids_below(3) == [msg(1).message_id, msg(2).message_id]
    state.relocate("/queue/a", msg(1).message_id, Location(5, 0, 50))  # an earlier compaction copied it
    assert not state.oldest_below(3)  # m2 would be copied ahead of m1, which is older
    assert state.oldest_below(6) and state.oldest_below(1)
    assert state.segment_live.keys() == {2, 3, 5}


async def test_a_snapshot_that_fills_segments_is_never_kept_from_its_middle(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    for start in range(0, COUNT, 20):  # every message stays live: the whole-log kind, in several segments
        await store.write([AddMessage("/queue/a", msg(i)) for i in range(start, start + 20)])
    await store.write([AddMessage("/queue/b", msg(i, "/queue/b")) for i in range(150)])
    await store.write([RemoveMessage("/queue/b", msg(i, "/queue/b").message_id) for i in range(150)])
    store.settings.appendlog_compact_live_fraction = 0.99
    await store.reclaim()
    await store.close()
    base = max(base for base, _, _ in snapshots(tmp_path))
    after = [n for n in list_segments(tmp_path) if n > base]
    assert after and all(begins_inside_snapshot(tmp_path, n) for n in after[:-1])
    assert not begins_inside_snapshot(tmp_path, base)
    store, recovered = await opened(tmp_path)
    assert ids(recovered) == expected(0)
    await store.close()


async def test_a_crash_at_any_deletion_of_a_prefix_holding_a_long_snapshot_recovers(tmp_path: Path) -> None:
    log, before = tmp_path / "log", tmp_path / "before"
    store, _ = await opened(log, appendlog_compact_live_fraction=0.0001)
    for start in range(0, COUNT, 20):
        await store.write([AddMessage("/queue/a", msg(i)) for i in range(start, start + 20)])
    await store.write([AddMessage("/queue/b", msg(i, "/queue/b")) for i in range(150)])
    await store.write([RemoveMessage("/queue/b", msg(i, "/queue/b").message_id) for i in range(150)])
    store.settings.appendlog_compact_live_fraction = 0.99  # a snapshot of all of them, over segments
    await store.reclaim()
    store.settings.appendlog_compact_live_fraction = 0.0001
    await store.write([RemoveMessage("/queue/a", msg(i).message_id) for i in range(500)])
    await store.close()
    shutil.copytree(log, before)
    store, _ = await opened(log)  # replaces the snapshot's segments, all but dead now
    await settle(store)
    await store.close()
    deleted = sorted((p.name for p in before.iterdir() if not (log / p.name).exists()),
                     key=lambda name: int(name[4:-4]))
    assert any(begins_inside_snapshot(before, int(name[4:-4])) for name in deleted)
    for count in range(len(deleted) + 1):  # a crash after deleting the newest len - count of them
        case = tmp_path / f"case{count}"
        shutil.copytree(log, case)
        for name in deleted[:count]:
            shutil.copy(before / name, case / name)
        store, recovered = await opened(case)
        assert ids(recovered) == expected(500), count
        await store.close()
    # Why not oldest first: without its first segment, the snapshot's next one opens no log.
    inside = next(i for i, name in enumerate(deleted) if begins_inside_snapshot(before, int(name[4:-4])))
    case = tmp_path / "oldest-first"
    shutil.copytree(log, case)
    for name in deleted[inside:]:
        shutil.copy(before / name, case / name)
    with pytest.raises(StoreCorrupted, match="outside a snapshot"):
        await opened(case)


def test_segments_are_deleted_newest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone: list[str] = []
    real = Path.unlink
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: (gone.append(self.name),
                                                                        real(self, missing_ok)))
    for n in (3, 1, 2):
        (tmp_path / segment_name(n)).write_bytes(b"")
    delete_segments(tmp_path, [3, 1, 2])
    assert gone == [segment_name(3), segment_name(2), segment_name(1)]
