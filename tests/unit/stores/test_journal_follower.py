"""The journal follower (hot standby) on real files: tailing, rotation, new epochs, cleanup, torn tails.

The yardstick is cold recovery: after any workload, `Follower.finish` must return exactly what
`recover()` returns on a copy of the same directory (index, messages, ends, epoch, next file).
A writer process killed with SIGKILL mid-write provides real torn tails.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.engine.core import Broker
from broker.ha.standby import Standby
from config.model import BrokerConfig, StoreSettings
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    Op,
    PutSubscription,
    Recovered,
    RemoveMessage,
    StoreCorrupted,
    StoredMessage,
)
from stores.journal import follower as follower_module
from stores.journal import layout
from stores.journal.follower import Follower
from stores.journal.followstate import LiveState
from stores.journal.records import SEAL, Seal, encode_batch, encode_record, encode_seal
from stores.journal.recovery import Result, recover
from stores.journal.store import JournalStore
from tests.helpers.fences import EpochFence
from tests.helpers.reap import kill9, reap

KiB = 1024
WINDOW = 50


class Recorder:
    """A sink that rebuilds the message lists from reset + changes, as the broker's standby does."""

    def __init__(self) -> None:
        self.queues: dict[str, dict[str, StoredMessage]] = {}
        self.resets = 0

    def reset(self, recovered: Recovered) -> None:
        self.resets += 1
        self.queues = {q: {m.message_id: m for m in ms} for q, ms in recovered.queues.items()}

    def changed(self, ops: list[Op]) -> None:
        for op in ops:
            if isinstance(op, AddMessage):
                self.queues.setdefault(op.queue, {})[op.message.message_id] = op.message
            elif isinstance(op, RemoveMessage):
                del self.queues[op.queue][op.message_id]
                if not self.queues[op.queue]:
                    del self.queues[op.queue]
            elif isinstance(op, DropSubscription):
                self.queues.pop(op.key, None)

    def ids(self) -> dict[str, list[str]]:
        return {q: list(ms) for q, ms in self.queues.items()}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(follower_module, "RETRY_DELAY", 0.0)
    monkeypatch.setattr(follower_module, "SCAN_INTERVAL", 0.0)


def settings(**overrides: object) -> StoreSettings:
    values: dict[str, object] = {"journal_max_file_size": 64 * KiB, "checkpoint_interval": 60.0,
                                 "cleanup_interval": 60.0, "duplicate_window": WINDOW}
    values.update(overrides)
    return StoreSettings(**values)


def msg(n: int, size: int = 700, queue: str = "/queue/a") -> StoredMessage:
    return StoredMessage(f"m{n}", queue, {"n": str(n)}, bytes([n % 251]) * size, f"p{n}")


def follow(f: Follower, rounds: int = 10_000) -> None:
    """Poll until nothing more is waiting (bounded)."""
    for _ in range(rounds):
        if not f.poll() and f.ready:
            return
    raise AssertionError("follower never caught up")


def summary(result: Result, directory: Path) -> dict[str, object]:
    """What a recovery built, with every message read back from `directory` at its location."""
    index = result.index
    recovered = LiveState(index).recovered(directory, 1 << 40, lambda: None)  # heads = everything
    assert recovered.depths == {q: len(ms) for q, ms in recovered.queues.items()}
    return {
        "queues": {q: [(m.message_id, m.destination, m.headers, m.body, m.producer_id) for m in ms]
                   for q, ms in recovered.queues.items()},
        "subs": recovered.subscriptions,
        "producers": recovered.producer_ids,
        "index": {q: list(entries.items()) for q, entries in index.queues.items()},
        "index_subs": list(index.subscriptions.items()),
        "index_producers": list(index.producers),
        "live": dict(index.live),
        "messages": index.messages,
        "ends": result.ends,
        "epoch": result.epoch,
        "next_file": result.next_file,
    }


def last_data_file(directory: Path) -> Path:
    """The highest-numbered data file (by number: db-100.log comes after db-99.log)."""
    files = layout.data_files(directory)
    return files[max(files)]


def assert_warm_equals_cold(directory: Path, f: Follower, tmp_path: Path, epoch: int = 0) -> Result:
    copy = tmp_path / f"cold-{time.monotonic_ns()}"
    shutil.copytree(directory, copy)
    cold = recover(copy, epoch, WINDOW)
    warm = f.finish(epoch)
    assert warm is not None, f"follower fell back to cold: {f.reason}"
    assert summary(warm, directory) == summary(cold, copy)
    assert sorted(os.listdir(directory)) == sorted(os.listdir(copy))
    for name in os.listdir(directory):  # the same torn tail was cut
        assert (directory / name).stat().st_size == (copy / name).stat().st_size, name
    return warm


async def test_tails_appends_and_reports_changes_in_order(tmp_path):
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings())
    await store.open()
    sink = Recorder()
    f = Follower(directory, WINDOW, sink)
    follow(f)
    assert f.ready and sink.resets == 1 and sink.ids() == {}
    for n in range(5):
        await store.enqueue("/queue/a", msg(n))
    await store.remove("/queue/a", "m1")
    follow(f)
    assert sink.ids() == {"/queue/a": ["m0", "m2", "m3", "m4"]}
    await store.write([RemoveMessage("/queue/a", "m0"), AddMessage("/queue/b", msg(9, queue="/queue/b"))])
    follow(f)
    assert sink.ids() == {"/queue/a": ["m2", "m3", "m4"], "/queue/b": ["m9"]}
    assert f.poll() is False  # nothing new: a stat and nothing else
    await store.close()
    follow(f)
    assert sink.resets == 1
    assert_warm_equals_cold(directory, f, tmp_path)


async def test_follows_rotation_and_cleanup_of_consumed_files(tmp_path):
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings())
    await store.open()
    sink = Recorder()
    f = Follower(directory, WINDOW, sink)
    follow(f)
    for n in range(300):  # about five files of 64 KiB
        await store.enqueue("/queue/a", msg(n))
        if n % 40 == 39:
            follow(f)
    follow(f)
    for n in range(0, 290):
        await store.remove("/queue/a", f"m{n}")
    follow(f)
    report = await store.cleanup()  # deletes files the follower has read: fine
    assert report.deleted
    follow(f)
    first = max(layout.data_files(directory))
    for n in range(1000, 1100):  # rotate: the new files' SEALs no longer list the deleted ones
        await store.enqueue("/queue/a", msg(n))
    assert max(layout.data_files(directory)) > first
    follow(f)
    assert f.rebuilds == 1, f.reason
    kept = [*range(290, 300), *range(1000, 1100)]
    assert sink.ids() == {"/queue/a": [f"m{n}" for n in kept]}
    await store.close()
    assert_warm_equals_cold(directory, f, tmp_path)


async def test_cleanup_of_a_file_not_yet_read_rebuilds(tmp_path):
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings())
    await store.open()
    sink = Recorder()
    f = Follower(directory, WINDOW, sink)
    follow(f)
    await store.enqueue("/queue/a", msg(0))
    for n in range(1, 300):  # the follower lags behind all of this
        await store.enqueue("/queue/a", msg(n))
        await store.remove("/queue/a", f"m{n}")
    report = await store.cleanup()
    assert len(report.deleted) >= 2
    follow(f)
    assert f.rebuilds == 2 and f.ready
    assert sink.ids() == {"/queue/a": ["m0"]}
    await store.close()
    assert_warm_equals_cold(directory, f, tmp_path)


async def test_compaction_moves_keep_place_and_content(tmp_path):
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings())
    await store.open()
    f = Follower(directory, WINDOW, Recorder())
    follow(f)
    for n in range(400):
        await store.enqueue("/queue/a", msg(n))
        if n % 10:
            await store.remove("/queue/a", f"m{n}")
        if n % 50 == 0:
            follow(f)
    report = await store.cleanup()
    assert report.moved > 0
    follow(f)
    await store.close()
    follow(f)
    assert f.rebuilds == 1
    assert_warm_equals_cold(directory, f, tmp_path)


async def test_incomplete_or_damaged_tail_is_not_corruption_until_takeover(tmp_path):
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings())
    await store.open()
    for n in range(3):
        await store.enqueue("/queue/a", msg(n))
    await store.close()
    sink = Recorder()
    f = Follower(directory, WINDOW, sink)
    follow(f)
    last = last_data_file(directory)
    record = encode_batch([AddMessage("/queue/a", msg(7))])
    with open(last, "ab") as out:
        out.write(record[:100])
    follow(f)
    assert f.ready and f.stalled_at is not None and sink.ids() == {"/queue/a": ["m0", "m1", "m2"]}
    with open(last, "ab") as out:
        out.write(record[100:])
    follow(f)
    assert f.stalled_at is None and sink.ids()["/queue/a"][-1] == "m7"
    # A CRC-failing record at the end: stalled while following, a torn tail at takeover.
    bad = bytearray(encode_batch([AddMessage("/queue/a", msg(8))]))
    bad[-1] ^= 0xFF
    with open(last, "ab") as out:
        out.write(bytes(bad))
    follow(f)
    assert f.ready and f.stalled_at is not None and f.rebuilds == 1
    size = last.stat().st_size
    warm = assert_warm_equals_cold(directory, f, tmp_path)
    assert warm.stats.torn_bytes == len(bad) and last.stat().st_size == size - len(bad)


async def test_a_writer_killed_inside_a_new_files_seal_is_a_torn_tail_at_takeover(tmp_path):
    """The writer rotated and died while writing the new file's first record (its SEAL): cold
    recovery cuts that file to nothing; the follower's takeover must do the same, not go cold."""
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings())
    await store.open()
    for n in range(3):
        await store.enqueue("/queue/a", msg(n))
    await store.close()
    f = Follower(directory, WINDOW, Recorder())
    follow(f)
    last = last_data_file(directory)
    number = max(layout.data_files(directory))
    ends = {number: last.stat().st_size}
    seal = encode_record(SEAL, encode_seal(Seal(epoch=2, file=number + 1, ends=ends)))
    torn = layout.data_path(directory, number + 1)
    torn.write_bytes(seal[:21])
    follow(f)
    assert f.ready  # while following, an unfinished SEAL is simply not written yet
    warm = assert_warm_equals_cold(directory, f, tmp_path)
    assert torn.stat().st_size == 0 and warm.stats.torn_bytes == 21


async def test_damage_before_a_valid_record_is_left_to_cold_recovery(tmp_path):
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings())
    await store.open()
    await store.enqueue("/queue/a", msg(0))
    await store.close()
    f = Follower(directory, WINDOW)
    follow(f)
    last = last_data_file(directory)
    bad = bytearray(encode_batch([AddMessage("/queue/a", msg(1))]))
    bad[20] ^= 0xFF
    with open(last, "ab") as out:
        out.write(bytes(bad) + encode_batch([AddMessage("/queue/a", msg(2))]))
    follow(f)
    assert f.ready  # while following it cannot tell damage from a write in progress
    assert f.finish(0) is None  # ... at takeover it leaves the verdict to cold recovery


async def test_new_epoch_sealing_before_what_was_read_rebuilds(tmp_path):
    directory = tmp_path / "journal"
    old = JournalStore(directory, settings(), EpochFence(1))
    await old.open()
    for n in range(3):
        await old.enqueue("/queue/a", msg(n))
    sink = Recorder()
    f = Follower(directory, WINDOW, sink)
    follow(f)
    new = JournalStore(directory, settings(), EpochFence(2))  # takes over: seals the old file here
    await new.open()
    await old.enqueue("/queue/a", msg(3))  # the deposed master writes past its sealed end
    follow(f)
    assert f.rebuilds == 2 and f.ready
    assert sink.ids() == {"/queue/a": ["m0", "m1", "m2"]}
    await new.enqueue("/queue/a", msg(4))
    follow(f)
    assert sink.ids() == {"/queue/a": ["m0", "m1", "m2", "m4"]}
    await new.close()
    await old.close()
    assert_warm_equals_cold(directory, f, tmp_path, epoch=3)


async def test_new_epoch_after_what_was_read_just_continues(tmp_path):
    directory = tmp_path / "journal"
    old = JournalStore(directory, settings(), EpochFence(1))
    await old.open()
    await old.enqueue("/queue/a", msg(0))
    f = Follower(directory, WINDOW, Recorder())
    follow(f)
    await old.enqueue("/queue/a", msg(1))
    await old.close()
    new = JournalStore(directory, settings(), EpochFence(2))
    await new.open()
    await new.enqueue("/queue/a", msg(2))
    follow(f)
    assert f.rebuilds == 1
    await new.close()
    assert_warm_equals_cold(directory, f, tmp_path, epoch=3)


def random_ops(rng: random.Random, live: dict[str, list[str]], subs: set[str], seq: list[int]) -> list[Op]:
    ops: list[Op] = []
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        queues = [q for q, ids in live.items() if ids]
        if roll < 0.5 or not queues:
            queue = rng.choice(["/queue/a", "/queue/b", *sorted(subs)])
            seq[0] += 1
            message = msg(seq[0], rng.randint(10, 3000), queue)
            message.headers["priority"] = str(rng.randint(0, 9))
            ops.append(AddMessage(queue, message))
            live.setdefault(queue, []).append(f"m{seq[0]}")
        elif roll < 0.85:
            queue = rng.choice(queues)
            ops.append(RemoveMessage(queue, live[queue].pop(rng.randrange(len(live[queue])))))
        elif roll < 0.93:
            key = f"durable:c:{rng.randint(1, 3)}"
            subs.add(key)
            ops.append(PutSubscription(DurableSubscription(key, "c", key[-1], "/topic/t", None)))
        elif subs:
            key = rng.choice(sorted(subs))
            subs.discard(key)
            live.pop(key, None)
            ops.append(DropSubscription(key))
    return ops


@pytest.mark.parametrize("seed", range(4))
async def test_random_workload_with_new_masters_warm_equals_cold(tmp_path, seed):
    rng = random.Random(seed)
    directory = tmp_path / "journal"
    epoch = 1
    store = JournalStore(directory, settings(), EpochFence(epoch))
    await store.open()
    sink = Recorder()
    f = Follower(directory, WINDOW, sink)
    live: dict[str, list[str]] = {}
    subs: set[str] = set()
    seq = [0]
    for step in range(400):
        await store.write(random_ops(rng, live, subs, seq))
        roll = rng.random()
        if roll < 0.2:
            follow(f)
        elif roll < 0.23:
            await store.cleanup()
        elif roll < 0.26:
            await store.checkpoint()
        elif roll < 0.28:  # a new master (the old one stopped cleanly)
            await store.close()
            epoch += 1
            store = JournalStore(directory, settings(), EpochFence(epoch))
            await store.open()
        if step % 50 == 0:
            follow(f)
            assert f.live is not None, f.reason
            expected = {q: list(entries) for q, entries in f.live.index.queues.items()}
            assert sink.ids() == expected
    await store.close()
    follow(f)
    assert_warm_equals_cold(directory, f, tmp_path, epoch=epoch + 1)


# The broker side: the standby's mirror is the broker cold recovery builds ----------------------


def broker_summary(broker: Broker) -> dict[str, object]:
    def content(queue) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
        return [(m.message_id, m.destination, m.headers, m.body, m.persistent, m.priority, m.expires,
                 m.producer_id, m.redelivered, m.stored, m.size) for m in queue.messages()]

    d = broker.destinations
    return {
        "queues": {name: (content(q), q.stats()) for name, q in sorted(d.queues.items())},
        "durables": {key: (x.client_id, x.name, x.topic, x.selector_text, x.attached, content(x.queue),
                           x.queue.stats()) for key, x in sorted(d.durables.items())},
        "topics": {name: sorted((k, t.durable) for k, t in topic.queues.items())
                   for name, topic in sorted(d.topics.items())},
        "producers": len(broker.producers),
    }


@pytest.mark.parametrize("seed", range(3))
async def test_standby_broker_equals_the_cold_built_broker(tmp_path, seed):
    rng = random.Random(seed)
    config = BrokerConfig(name="s", data_dir=tmp_path, store=settings())
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings(), EpochFence(1))
    await store.open()
    standby = Standby.for_config(config)
    assert standby is not None
    live: dict[str, list[str]] = {}
    subs: set[str] = set()
    seq = [0]
    for step in range(300):
        await store.write(random_ops(rng, live, subs, seq))
        if rng.random() < 0.2:
            follow(standby.follower)
        if step == 150:
            await store.cleanup()
    follow(standby.follower)
    await store.close()
    assert standby.invalid is None and standby.broker is not None
    master = JournalStore(directory, settings(), EpochFence(2))
    assert await standby.hand_over(master)
    recovered = await master.open()
    warm = standby.adopt(master, recovered)
    assert master.warm and warm is not None and warm.store is master
    cold = Broker(config, None)
    await cold.start(recovered)
    assert broker_summary(warm) == broker_summary(cold)
    assert any(m.redelivered for q in warm.destinations.queues.values() for m in q.messages())
    await standby.close()
    await master.close()


async def test_standby_is_not_adopted_when_the_store_recovered_cold(tmp_path):
    config = BrokerConfig(name="s", data_dir=tmp_path, store=settings())
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings(), EpochFence(1))
    await store.open()
    await store.enqueue("/queue/a", msg(1))
    standby = Standby.for_config(config)
    assert standby is not None
    follow(standby.follower)
    await store.close()
    last = last_data_file(directory)
    bad = bytearray(encode_batch([AddMessage("/queue/a", msg(2))]))
    bad[20] ^= 0xFF  # damage followed by a valid record: only cold recovery may judge it
    with open(last, "ab") as out:
        out.write(bytes(bad) + encode_batch([AddMessage("/queue/a", msg(3))]))
    master = JournalStore(directory, settings(), EpochFence(2))
    assert await standby.hand_over(master)
    with pytest.raises(StoreCorrupted):
        await master.open()
    assert not master.warm and standby.adopt(master, Recovered()) is None
    await standby.close()


# A writer process to kill -------------------------------------------------------------------


async def _write_forever(directory: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = JournalStore(directory, settings(checkpoint_interval=0.2, cleanup_interval=0.5), EpochFence(1))
    await store.open()
    print("READY", flush=True)
    live: dict[str, list[str]] = {}
    subs: set[str] = set()
    seq = [0]
    for _ in range(100_000):
        await store.write(random_ops(rng, live, subs, seq))


@pytest.mark.slow  # a real writer process killed mid-stream, about 2 s per seed
@pytest.mark.parametrize("seed", range(3))
def test_warm_equals_cold_after_kill9_of_the_writer(tmp_path, seed):
    directory = tmp_path / "journal"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.stores.test_journal_follower", str(directory), str(seed)],
        stdout=subprocess.PIPE, cwd=Path(__file__).parents[3],
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"READY"
        f = Follower(directory, WINDOW, Recorder())
        deadline = time.monotonic() + 1.0 + random.Random(seed).random()
        while time.monotonic() < deadline:
            f.poll()
            time.sleep(0.01)
        kill9(proc)
    finally:
        reap(proc)
    last = last_data_file(directory)
    with open(last, "ab") as out:  # make sure there is a torn tail to cut
        out.write(encode_batch([AddMessage("/queue/a", msg(10**6))])[: 30 + seed])
    f.poll()
    assert_warm_equals_cold(directory, f, tmp_path, epoch=2)


if __name__ == "__main__":
    asyncio.run(_write_forever(Path(sys.argv[1]), int(sys.argv[2])))


# A small cursor window: the sink gets heads and depths, never every body --------------------


class HeadRecorder:
    def __init__(self) -> None:
        self.resets: list[Recovered] = []
        self.changes: list[Op] = []

    def reset(self, recovered: Recovered) -> None:
        self.resets.append(recovered)

    def changed(self, ops: list[Op]) -> None:
        self.changes.extend(ops)


async def test_a_small_cursor_window_gives_the_sink_heads_and_depths(tmp_path):
    directory = tmp_path / "journal"
    small = settings(cursor_window=1024)
    store = JournalStore(directory, small, EpochFence(1))
    await store.open()
    await store.write([AddMessage("/queue/a", msg(n, size=300)) for n in range(20)])
    await store.write([AddMessage("/queue/b", msg(n, size=3000, queue="/queue/b")) for n in range(20, 23)])
    await store.close()  # a checkpoint: the follower builds from it and reads only the heads
    sink = HeadRecorder()
    f = Follower(directory, WINDOW, sink, cursor_window=1024)
    follow(f)
    (first,) = sink.resets
    assert {q: [m.message_id for m in ms] for q, ms in first.queues.items()} == {
        "/queue/a": ["m0", "m1", "m2"], "/queue/b": ["m20"]}  # 3 x 303 bytes fit in 1 KiB, 1 x 3003 does
    assert first.depths == {"/queue/a": 20, "/queue/b": 3}
    assert first.queues["/queue/a"][1] == msg(1, size=300)
    store = JournalStore(directory, small, EpochFence(2))
    await store.open()
    await store.write([RemoveMessage("/queue/a", "m0"), RemoveMessage("/queue/a", "m9"),
                       AddMessage("/queue/a", msg(50, size=300)), RemoveMessage("/queue/a", "m9")])
    await store.close()
    follow(f)
    # Removals outside the head are effective changes too; the add carries its message.
    assert sink.changes == [RemoveMessage("/queue/a", "m0"), RemoveMessage("/queue/a", "m9"),
                            AddMessage("/queue/a", msg(50, size=300))]
    master = JournalStore(directory, small, EpochFence(3))
    assert master.follow_from(f)
    recovered = await master.open()
    try:
        assert master.warm
        assert [m.message_id for m in recovered.queues["/queue/a"]] == ["m1", "m2", "m3"]
        assert recovered.depths == {"/queue/a": 19, "/queue/b": 3}
        after = master.position("/queue/a", "m3")
        rest = (await master.read_batch("/queue/a", after, 100)).messages
        assert [m.message_id for m in rest] == [f"m{n}" for n in range(4, 20) if n != 9] + ["m50"]
    finally:
        await master.close()


def test_the_standby_cross_check_compares_depths_not_heads(tmp_path):
    config = BrokerConfig(name="s", data_dir=tmp_path, store=settings())
    standby = Standby(config)
    head = [msg(n) for n in range(3)]
    standby.reset(Recovered(queues={"/queue/a": head}))
    broker = standby.broker
    assert broker is not None
    assert standby._mismatch(Recovered(queues={"/queue/a": head})) is None
    assert standby._mismatch(Recovered(queues={"/queue/a": head}, depths={"/queue/a": 3})) is None
    problem = standby._mismatch(Recovered(queues={"/queue/a": head}, depths={"/queue/a": 4}))
    assert problem is not None and "/queue/a" in problem
    assert standby._mismatch(Recovered(queues={"/queue/a": head, "/queue/b": [msg(9)]})) is not None
