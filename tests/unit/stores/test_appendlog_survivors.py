"""An old unconsumed message does not keep the append log's consumed segments on disk.

Compaction copies the live messages of the prefix it replaces (FORMAT.md, "Compaction"), so a
survivor from long ago is carried forward into each snapshot and the consumed segments behind it
are deleted. These tests hold the store to that on real files: the segment files go, a cold
reopen gives exactly the live set (no acknowledged removal comes back), a follower keeps up as the
segments it read are deleted, and a writer killed with SIGKILL while compacting leaves a log
whose cold recovery keeps every acknowledged write.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from config.model import StoreSettings
from stores.appendlog import follower as follower_module
from stores.appendlog.follower import Follower
from stores.appendlog.segments import list_segments, segment_name
from stores.appendlog.store import AppendLogStore
from stores.base import AddMessage, Recovered, RemoveMessage, StoredMessage
from tests.helpers.reap import kill9, reap
from tests.unit.stores.test_journal_follower import Recorder

SEGMENT = 64 * 1024
LAG = 50  # messages a consumer leaves unacknowledged behind the producer
STREAM = 1500  # ~25 segments of 1 KiB messages (snapshots' rotations take numbers up to ~57)


def settings() -> StoreSettings:
    return StoreSettings(type="appendlog", appendlog_segment_size=SEGMENT, duplicate_window=20,
                         checkpoint_interval=3600.0)


def msg(n: int, queue: str = "/queue/a") -> StoredMessage:
    return StoredMessage(f"m{n:05d}", queue, {"n": str(n)}, b"x" * 1024, f"p{n}")


def on_disk(path: Path) -> tuple[list[int], int]:
    numbers = list_segments(path)
    return numbers, sum((path / segment_name(n)).stat().st_size for n in numbers)


def ids(recovered: Recovered) -> dict[str, list[str]]:
    return {q: [m.message_id for m in ms] for q, ms in recovered.queues.items()}


async def settle(store: AppendLogStore) -> None:
    while (task := store._compaction) is not None:
        await asyncio.shield(task)


async def stream(store: AppendLogStore, stuck: int | None,
                 poll: Callable[[], None] = lambda: None) -> list[str]:
    """STREAM messages to /queue/a, each acknowledged LAG messages later except `stuck`; the ids
    still live at the end, in order."""
    pending: list[int] = []
    for n in range(STREAM):
        await store.write([AddMessage("/queue/a", msg(n))])
        if n != stuck:
            pending.append(n)
        if len(pending) > LAG:
            await store.write([RemoveMessage("/queue/a", msg(pending.pop(0)).message_id)])
        await settle(store)
        poll()
    return [msg(n).message_id for n in sorted(pending + ([] if stuck is None else [stuck]))]


async def test_an_old_message_of_another_queue_does_not_keep_the_consumed_segments(tmp_path: Path) -> None:
    store = AppendLogStore(tmp_path, settings())
    await store.open()
    await store.enqueue("/queue/old", msg(0, "/queue/old"))
    live = await stream(store, stuck=None)
    numbers, size = on_disk(tmp_path)
    await store.close()
    assert 1 not in numbers and len(numbers) <= 4, numbers  # ~25 segments were written
    assert size < 4 * SEGMENT
    store = AppendLogStore(tmp_path, settings())
    recovered = await store.open()
    await store.close()
    assert ids(recovered) == {"/queue/old": [msg(0).message_id], "/queue/a": live}


async def test_a_stuck_message_of_the_same_queue_does_not_keep_the_consumed_segments(tmp_path: Path) -> None:
    store = AppendLogStore(tmp_path, settings())
    await store.open()
    live = await stream(store, stuck=3)
    numbers, size = on_disk(tmp_path)
    await store.close()
    assert live[0] == msg(3).message_id and len(live) == LAG + 1
    assert 1 not in numbers and len(numbers) <= 4, numbers
    assert size < 4 * SEGMENT
    store = AppendLogStore(tmp_path, settings())
    recovered = await store.open()
    await store.close()
    assert ids(recovered) == {"/queue/a": live}  # in order: the stuck one kept its place


async def test_a_follower_keeps_up_while_the_segments_behind_a_survivor_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follower_module, "RETRY_DELAY", 0.0)
    monkeypatch.setattr(follower_module, "SCAN_INTERVAL", 0.0)
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings())
    await store.open()
    await store.enqueue("/queue/old", msg(0, "/queue/old"))
    sink = Recorder()
    f = Follower(directory, settings(), sink)

    def poll() -> None:
        for _ in range(1000):
            if not f.poll() and f.ready:
                return
        raise AssertionError(f"follower never caught up: {f.reason}")

    poll()
    live = await stream(store, stuck=None, poll=poll)
    assert 1 not in list_segments(directory)
    assert f.rebuilds == 1, f.reason  # followed every compaction without starting over
    assert sink.ids() == {"/queue/old": [msg(0).message_id], "/queue/a": live}
    await store.close()
    warm = AppendLogStore(directory, settings())
    assert warm.follow_from(f)
    recovered = await warm.open()
    await warm.close()
    assert warm.warm and ids(recovered) == {"/queue/old": [msg(0).message_id], "/queue/a": live}


async def _write_forever(directory: Path) -> None:
    """The killed writer: a survivor, then a lagging stream; after each acknowledged write it
    prints what the store now holds durably ("A n" added, "R n" removed)."""
    store = AppendLogStore(directory, settings())  # the default sync policy: durable when written
    await store.open()
    await store.enqueue("/queue/old", msg(0, "/queue/old"))
    print("READY", flush=True)
    pending: list[int] = []
    for n in range(1, 10**6):
        await store.write([AddMessage("/queue/a", msg(n))])
        print(f"A {n}", flush=True)
        pending.append(n)
        if len(pending) > LAG:
            done = pending.pop(0)
            await store.write([RemoveMessage("/queue/a", msg(done).message_id)])
            print(f"R {done}", flush=True)


@pytest.mark.slow  # a real writer process killed while it compacts, about 2 s a round
@pytest.mark.parametrize("seed", range(3))
async def test_a_writer_killed_while_compacting_past_a_survivor_loses_nothing(
        tmp_path: Path, seed: int) -> None:
    directory = tmp_path / "appendlog"
    writer = [sys.executable, "-m", "tests.unit.stores.test_appendlog_survivors", str(directory)]
    proc = subprocess.Popen(writer, stdout=subprocess.PIPE, cwd=Path(__file__).parents[3])
    lines: list[str] = []
    try:
        out = proc.stdout
        assert out is not None and out.readline().strip() == b"READY"
        # Read what the writer acknowledges as it goes: a full pipe would stall it.
        reader = threading.Thread(target=lambda: lines.extend(out.read().decode().split("\n")))
        reader.start()
        first = list_segments(directory)[0]
        # Until compaction has deleted segments at least once, then a random moment later (bounded).
        deadline = time.monotonic() + 60
        while list_segments(directory)[0] == first and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(random.Random(seed).random())
        kill9(proc)
        reader.join(10)
    finally:
        reap(proc)
    added = {int(line[2:]) for line in lines if line.startswith("A ")}  # acknowledged before the kill
    removed = {int(line[2:]) for line in lines if line.startswith("R ")}
    assert list_segments(directory)[0] > first, "no compaction deleted anything before the kill"
    store = AppendLogStore(directory, settings())
    recovered = await store.open()
    await store.close()
    got = ids(recovered)
    assert got.pop("/queue/old") == [msg(0).message_id]
    live = [int(mid[1:]) for mid in got.pop("/queue/a", [])]
    assert not got
    assert not set(live) & removed  # no acknowledged removal undone
    waiting = sorted(added - removed)
    # Every acknowledged add not removed is there, but the removal in flight at the kill may have
    # landed (the oldest waiting), and so may the add in flight (the next number).
    assert set(waiting[1:]) <= set(live) <= set(waiting) | {max(added) + 1}
    assert live == sorted(live)


if __name__ == "__main__":
    asyncio.run(_write_forever(Path(sys.argv[1])))
