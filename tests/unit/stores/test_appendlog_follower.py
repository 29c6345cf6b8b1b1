"""The append-log follower (hot standby) on real files: tailing, rotation, compaction, new epochs,
torn tails, a writer killed mid-write.

The yardstick is cold recovery: after any workload, `Follower.finish` must return exactly the plan
`plan_recovery` makes on a copy of the same directory (index, locations, sizes, seals, repairs,
epoch), and a store opened warm must recover what one opened cold on the copy recovers.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from broker.engine.core import Broker
from broker.ha.standby import Standby
from config.model import BrokerConfig, StoreSettings
from stores.appendlog import follower as follower_module
from stores.appendlog import records, segments
from stores.appendlog.follower import Follower
from stores.appendlog.records import RecordType
from stores.appendlog.recovery import Plan, plan_recovery
from stores.appendlog.state import LogState
from stores.appendlog.store import AppendLogStore
from stores.base import AddMessage, Recovered, RemoveMessage, StoredMessage
from tests.helpers.fences import EpochFence
from tests.helpers.reap import kill9, reap
from tests.unit.stores.test_journal_follower import Recorder, broker_summary, random_ops

KiB = 1024
WINDOW = 50
SEGMENT = 64 * KiB


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(follower_module, "RETRY_DELAY", 0.0)
    monkeypatch.setattr(follower_module, "DAMAGE_DELAY", 0.0)
    monkeypatch.setattr(follower_module, "SCAN_INTERVAL", 0.0)


def settings(**overrides: object) -> StoreSettings:
    # No checkpoint on a timer: a store opened cold writes one checkpoint_interval after its open
    # (it replayed records no checkpoint covers), one opened warm does not, and the two stores'
    # files are compared (test_appendlog_checkpoint.py covers the checkpoint after takeover).
    values: dict[str, object] = {"type": "appendlog", "appendlog_segment_size": SEGMENT,
                                 "duplicate_window": WINDOW, "checkpoint_interval": 3600.0}
    values.update(overrides)
    return StoreSettings(**values)  # type: ignore[arg-type]


def msg(n: int, size: int = 700, queue: str = "/queue/a") -> StoredMessage:
    return StoredMessage(f"m{n}", queue, {"n": str(n)}, bytes([n % 251]) * size, f"p{n}")


def follow(f: Follower, rounds: int = 10_000) -> None:
    """Poll until nothing more is waiting (bounded)."""
    for _ in range(rounds):
        if not f.poll() and f.ready:
            return
    raise AssertionError(f"follower never caught up: {f.reason}")


def content(state: LogState) -> dict[str, object]:
    """What a replay built, positions aside (they mean something only to their own store object)."""
    return {
        "queues": {q: list(entries.items()) for q, entries in state.queues.items()},
        "sizes": {q: list(entries.packed().sizes or ()) for q, entries in state.queues.items()},
        "orders": {q: [mid for _, mid in order.after(None, 1 << 30)] for q, order in state.orders.items()},
        "subs": list(state.subscriptions.items()),
        "producers": list(state.producers),
        "messages": state.messages,
        "live_bytes": state.live_bytes,
        "segment_live": state.segment_live,
    }


def summary(plan: Plan) -> dict[str, object]:
    return {"state": content(plan.state), "epoch": plan.epoch, "next": plan.next_number, "sizes": plan.sizes,
            "seal": plan.seal, "truncate": plan.truncate, "discard": plan.discard, "obsolete": plan.obsolete,
            "base": plan.replaced_below, "quarantine": plan.quarantine}


def cold_copy(directory: Path, tmp_path: Path) -> Path:
    copy = tmp_path / f"cold-{time.monotonic_ns()}"
    shutil.copytree(directory, copy)
    return copy


def assert_follows(directory: Path, f: Follower, tmp_path: Path) -> None:
    """The state followed so far is the one a cold recovery of the files as they are builds."""
    cold = plan_recovery(cold_copy(directory, tmp_path), WINDOW, 0)
    assert content(f.state) == content(cold.state)


def assert_warm_equals_cold(directory: Path, f: Follower, tmp_path: Path, epoch: int = 0) -> Plan:
    copy = cold_copy(directory, tmp_path)
    cold = plan_recovery(copy, WINDOW, epoch)
    warm = f.finish(epoch)
    assert warm is not None, f"follower fell back to cold: {f.reason}"
    assert summary(warm) == summary(cold)
    return warm


async def assert_stores_agree(directory: Path, f: Follower, tmp_path: Path, epoch: int) -> None:
    """A store opened warm from `f` and one opened cold on a copy: the same recovery, the same
    files after it (repairs, the new segment), and the same messages read back."""
    copy = cold_copy(directory, tmp_path)
    warm, cold = AppendLogStore(directory, settings(), EpochFence(epoch)), AppendLogStore(
        copy, settings(), EpochFence(epoch))
    assert warm.follow_from(f)
    got, expected = await warm.open(), await cold.open()
    try:
        assert warm.warm and not cold.warm
        assert got == expected
        await settled(warm)  # a compaction the open started (it does the same on both)
        await settled(cold)
        assert sorted(os.listdir(directory)) == sorted(os.listdir(copy))
        for name in os.listdir(directory):
            if name.endswith(".seg"):
                assert (directory / name).read_bytes() == (copy / name).read_bytes(), name
        for queue in expected.depths:
            mine = await warm.read_batch(queue, None, 1 << 20)
            assert mine.messages == (await cold.read_batch(queue, None, 1 << 20)).messages
    finally:
        await warm.close()
        await cold.close()


async def settled(store: AppendLogStore) -> None:
    """Wait for a compaction the last write started (it deletes segments on the writer thread)."""
    while (task := store._compaction) is not None:
        await asyncio.shield(task)


def last_segment(directory: Path) -> Path:
    return directory / segments.segment_name(segments.list_segments(directory)[-1])


def batch(*ops: object) -> bytes:
    return records.encode_frame(RecordType.BATCH, records.encode_batch(ops))  # type: ignore[arg-type]


async def test_tails_appends_and_reports_changes_in_order(tmp_path):
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings())
    await store.open()
    sink = Recorder()
    f = Follower(directory, settings(), sink)
    follow(f)
    assert f.ready and sink.resets == 1 and sink.ids() == {}
    for n in range(5):
        await store.enqueue("/queue/a", msg(n))
    await store.remove("/queue/a", "m1")
    follow(f)
    assert sink.ids() == {"/queue/a": ["m0", "m2", "m3", "m4"]}
    await store.write([RemoveMessage("/queue/a", "m0"), AddMessage("/queue/b", msg(9, queue="/queue/b")),
                       RemoveMessage("/queue/a", "m0")])
    follow(f)
    assert sink.ids() == {"/queue/a": ["m2", "m3", "m4"], "/queue/b": ["m9"]}
    assert f.poll() is False  # nothing new
    await store.close()
    follow(f)
    assert sink.resets == 1 and f.rebuilds == 1
    await assert_stores_agree(directory, f, tmp_path, epoch=1)


async def test_follows_a_store_created_after_it_started(tmp_path):
    directory = tmp_path / "appendlog"
    sink = Recorder()
    f = Follower(directory, settings(), sink)
    assert f.poll() is False and not f.ready  # no directory yet
    directory.mkdir()
    follow(f)  # no segment yet: an empty state, ready
    assert f.ready and sink.resets == 1
    store = AppendLogStore(directory, settings())
    await store.open()
    await store.enqueue("/queue/a", msg(1))
    follow(f)
    assert sink.ids() == {"/queue/a": ["m1"]} and sink.resets == 1
    await store.close()
    await assert_stores_agree(directory, f, tmp_path, epoch=1)


async def test_starts_on_a_store_with_a_backlog_and_gives_heads_and_depths(tmp_path):
    directory = tmp_path / "appendlog"
    small = settings(cursor_window=1024)
    store = AppendLogStore(directory, small)
    await store.open()
    await store.write([AddMessage("/queue/a", msg(n, size=300)) for n in range(20)])
    await store.write([AddMessage("/queue/b", msg(n, size=3000, queue="/queue/b")) for n in range(20, 23)])
    resets: list[Recovered] = []
    changes: list[object] = []

    class Sink:
        def reset(self, recovered: Recovered) -> None:
            resets.append(recovered)

        def changed(self, ops: list[object]) -> None:
            changes.extend(ops)

    f = Follower(directory, small, Sink())  # type: ignore[arg-type]
    follow(f)
    (first,) = resets
    assert {q: [m.message_id for m in ms] for q, ms in first.queues.items()} == {
        "/queue/a": ["m0", "m1", "m2"], "/queue/b": ["m20"]}
    assert first.depths == {"/queue/a": 20, "/queue/b": 3}
    assert first.queues["/queue/a"][1] == msg(1, size=300)
    await store.write([RemoveMessage("/queue/a", "m0"), RemoveMessage("/queue/a", "m9"),
                       AddMessage("/queue/a", msg(50, size=300)), RemoveMessage("/queue/a", "m9")])
    await store.close()
    follow(f)
    assert changes == [RemoveMessage("/queue/a", "m0"), RemoveMessage("/queue/a", "m9"),
                       AddMessage("/queue/a", msg(50, size=300))]
    master = AppendLogStore(directory, small, EpochFence(2))
    assert master.follow_from(f)
    recovered = await master.open()
    try:
        assert master.warm
        assert [m.message_id for m in recovered.queues["/queue/a"]] == ["m1", "m2", "m3"]
        assert recovered.depths == {"/queue/a": 19, "/queue/b": 3}
        rest = (await master.read_batch("/queue/a", master.position("/queue/a", "m3"), 100)).messages
        assert [m.message_id for m in rest] == [f"m{n}" for n in range(4, 20) if n != 9] + ["m50"]
    finally:
        await master.close()


async def test_follows_rotation(tmp_path):
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings(appendlog_compact_live_fraction=0.01))
    await store.open()
    sink = Recorder()
    f = Follower(directory, settings(), sink)
    follow(f)
    for n in range(300):  # about four segments of 64 KiB
        await store.enqueue("/queue/a", msg(n))
        if n % 40 == 39:
            follow(f)
    assert len(segments.list_segments(directory)) >= 4
    follow(f)
    assert f.rebuilds == 1 and sink.ids() == {"/queue/a": [f"m{n}" for n in range(300)]}
    assert_follows(directory, f, tmp_path)
    await store.close()
    assert_warm_equals_cold(directory, f, tmp_path)


async def test_compaction_while_caught_up_needs_no_rebuild(tmp_path):
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings())
    await store.open()
    sink = Recorder()
    f = Follower(directory, settings(), sink)
    follow(f)
    first = segments.list_segments(directory)[0]
    for n in range(600):
        await store.enqueue("/queue/a", msg(n))
        if n % 10:
            await store.remove("/queue/a", f"m{n}")
        follow(f)  # one poll's worth behind at most: the follower reads each snapshot as it appears
    assert segments.list_segments(directory)[0] > first  # compaction deleted the old segments
    assert f.rebuilds == 1, f.reason
    assert sink.ids() == {"/queue/a": [f"m{n}" for n in range(0, 600, 10)]}
    assert_follows(directory, f, tmp_path)
    await store.close()
    await assert_stores_agree(directory, f, tmp_path, epoch=1)


async def test_compaction_of_segments_not_yet_read_rebuilds(tmp_path):
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings())
    await store.open()
    sink = Recorder()
    f = Follower(directory, settings(), sink)
    await store.enqueue("/queue/a", msg(0))
    follow(f)
    for n in range(1, 400):  # the follower lags behind all of this
        await store.enqueue("/queue/a", msg(n))
        await store.remove("/queue/a", f"m{n}")
    follow(f)
    assert f.rebuilds == 2 and f.ready
    assert sink.ids() == {"/queue/a": ["m0"]}
    await store.close()
    assert_warm_equals_cold(directory, f, tmp_path)


async def test_a_torn_or_damaged_tail_is_not_written_yet_until_takeover(tmp_path):
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings())
    await store.open()
    for n in range(3):
        await store.enqueue("/queue/a", msg(n))
    await store.close()
    sink = Recorder()
    f = Follower(directory, settings(), sink)
    follow(f)
    last = last_segment(directory)
    record = batch(AddMessage("/queue/a", msg(7)))
    with open(last, "ab") as out:
        out.write(record[:100])
    follow(f)
    assert f.ready and f.stalled_at is not None and sink.ids() == {"/queue/a": ["m0", "m1", "m2"]}
    with open(last, "ab") as out:
        out.write(record[100:])
    follow(f)
    assert f.stalled_at is None and sink.ids()["/queue/a"][-1] == "m7"
    bad = bytearray(batch(AddMessage("/queue/a", msg(8))))
    bad[-1] ^= 0xFF  # a whole record failing its CRC at the end: stalled, then a torn tail
    with open(last, "ab") as out:
        out.write(bytes(bad))
    follow(f)
    assert f.ready and f.stalled_at is not None and f.rebuilds == 1
    warm = assert_warm_equals_cold(directory, f, tmp_path, epoch=2)
    assert warm.truncate == (segments.list_segments(directory)[-1], last.stat().st_size - len(bad))


async def test_a_torn_tail_is_cut_as_cold_recovery_cuts_it(tmp_path):
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings())
    await store.open()
    await store.enqueue("/queue/a", msg(0))
    await store.close()
    f = Follower(directory, settings(), Recorder())
    follow(f)
    with open(last_segment(directory), "ab") as out:
        out.write(batch(AddMessage("/queue/a", msg(1))) + batch(AddMessage("/queue/a", msg(2)))[:30])
    await assert_stores_agree(directory, f, tmp_path, epoch=2)  # m1 read at takeover, the rest cut


async def test_a_writer_killed_creating_a_segment_leaves_a_torn_header(tmp_path):
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings())
    await store.open()
    for n in range(3):
        await store.enqueue("/queue/a", msg(n))
    await store.close()
    f = Follower(directory, settings(), Recorder())
    follow(f)
    number = segments.list_segments(directory)[-1]
    size = last_segment(directory).stat().st_size
    header = records.encode_frame(RecordType.SEGMENT,
                                  records.encode_segment_header(number + 1, 0, {number: size}))
    (directory / segments.segment_name(number + 1)).write_bytes(header[:12])
    follow(f)
    assert f.ready  # an unfinished header is not written yet
    warm = assert_warm_equals_cold(directory, f, tmp_path, epoch=2)
    assert warm.discard == [number + 1]


async def test_damage_before_an_intact_record_is_left_to_cold_recovery(tmp_path):
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings())
    await store.open()
    await store.enqueue("/queue/a", msg(0))
    await store.close()
    f = Follower(directory, settings())
    follow(f)
    bad = bytearray(batch(AddMessage("/queue/a", msg(1))))
    bad[20] ^= 0xFF
    with open(last_segment(directory), "ab") as out:
        out.write(bytes(bad) + batch(AddMessage("/queue/a", msg(2))))
    follow(f)
    assert f.ready  # while following it cannot tell damage from a write in progress
    assert f.finish(0) is None  # ... at takeover it leaves the verdict to cold recovery


async def test_a_new_epoch_sealing_before_what_was_read_rebuilds(tmp_path):
    directory = tmp_path / "appendlog"
    old = AppendLogStore(directory, settings(), EpochFence(1))
    await old.open()
    for n in range(3):
        await old.enqueue("/queue/a", msg(n))
    new = AppendLogStore(directory, settings(), EpochFence(2))  # takes over: seals old's segment here
    await new.open()
    await old.enqueue("/queue/a", msg(3))  # the deposed master writes past its sealed end
    sink = Recorder()
    f = Follower(directory, settings(), sink)
    follow(f)  # it may read m3 before it sees the seal; then it rebuilds
    assert sink.ids() == {"/queue/a": ["m0", "m1", "m2"]}
    await new.enqueue("/queue/a", msg(4))
    follow(f)
    assert sink.ids() == {"/queue/a": ["m0", "m1", "m2", "m4"]}
    await new.close()
    await old.close()
    assert_warm_equals_cold(directory, f, tmp_path, epoch=3)


async def test_a_deposed_masters_appends_read_before_the_seal_are_undone(tmp_path):
    directory = tmp_path / "appendlog"
    old = AppendLogStore(directory, settings(), EpochFence(1))
    await old.open()
    await old.enqueue("/queue/a", msg(0))
    f = Follower(directory, settings(), Recorder())
    follow(f)
    shadow = cold_copy(directory, tmp_path)  # what the new master will recover: m0
    await old.enqueue("/queue/a", msg(1))  # appended after the new master read the log
    follow(f)
    new = AppendLogStore(shadow, settings(), EpochFence(2))
    await new.open()
    await new.close()
    newest = segments.list_segments(shadow)[-1]
    shutil.copy(shadow / segments.segment_name(newest), directory / segments.segment_name(newest))
    follow(f)
    assert f.rebuilds == 2 and list(f.state.queues["/queue/a"]) == ["m0"]
    await old.close()
    assert_warm_equals_cold(directory, f, tmp_path, epoch=3)


@pytest.mark.parametrize("seed", range(4))
async def test_random_workload_with_compaction_and_new_masters_warm_equals_cold(tmp_path, seed):
    rng = random.Random(seed)
    directory = tmp_path / "appendlog"
    epoch = 1
    store = AppendLogStore(directory, settings(), EpochFence(epoch))
    await store.open()
    sink = Recorder()
    f = Follower(directory, settings(), sink)
    live: dict[str, list[str]] = {}
    subs: set[str] = set()
    seq = [0]
    for step in range(500):
        await store.write(random_ops(rng, live, subs, seq))
        roll = rng.random()
        if roll < 0.2:
            follow(f)
        elif roll < 0.22:  # a new master (the old one stopped cleanly)
            await store.close()
            epoch += 1
            store = AppendLogStore(directory, settings(), EpochFence(epoch))
            await store.open()
        if step % 50 == 0:
            await settled(store)
            follow(f)
            assert sink.ids() == {q: list(ids) for q, ids in f.state.queues.items()}
            assert_follows(directory, f, tmp_path)
    await store.close()
    follow(f)
    await assert_stores_agree(directory, f, tmp_path, epoch=epoch + 1)


# The broker side: the standby's mirror is the broker cold recovery builds ------------------------


@pytest.mark.parametrize("seed", range(2))
async def test_standby_broker_equals_the_cold_built_broker(tmp_path, seed):
    rng = random.Random(seed)
    config = BrokerConfig(name="s", data_dir=tmp_path, store=settings())
    directory = tmp_path / "appendlog"
    store = AppendLogStore(directory, settings(), EpochFence(1))
    await store.open()
    standby = Standby.for_config(config)
    assert standby is not None and isinstance(standby.follower, Follower)
    live: dict[str, list[str]] = {}
    subs: set[str] = set()
    seq = [0]
    for _ in range(300):
        await store.write(random_ops(rng, live, subs, seq))
        if rng.random() < 0.2:
            follow(standby.follower)
    follow(standby.follower)
    await store.close()
    assert standby.invalid is None and standby.broker is not None
    master = AppendLogStore(directory, settings(), EpochFence(2))
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


# Property: any program of writes, polls, compactions, new masters and torn tails --------------


class FollowMachine(RuleBasedStateMachine):
    """Against cold recovery of a copy of the same directory, after every step; at the end, the
    warm open against the cold one."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="appendlog-follow-"))
        self.directory = self.tmp / "appendlog"
        self.epoch = 1
        self.store: AppendLogStore | None = self._open()
        self.follower = Follower(self.directory, settings(), Recorder())
        self.counter = 0
        self.live: list[str] = []

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    def _open(self) -> AppendLogStore:
        store = AppendLogStore(self.directory, settings(), EpochFence(self.epoch))
        self.run(store.open())
        return store

    @rule(count=st.integers(1, 30), size=st.integers(10, 3000), remove=st.integers(0, 30))
    def write(self, count: int, size: int, remove: int) -> None:
        if self.store is None:
            self.store = self._open()
        ops: list[Any] = []
        for _ in range(count):
            self.counter += 1
            ops.append(AddMessage("/queue/a", msg(self.counter, size)))
            self.live.append(f"m{self.counter}")
        for message_id in self.live[:remove]:
            ops.append(RemoveMessage("/queue/a", message_id))
        del self.live[:remove]
        self.run(self.store.write(ops))
        self.run(settled(self.store))

    @rule()
    def poll(self) -> None:
        follow(self.follower)

    @rule()
    def new_master(self) -> None:
        if self.store is not None:
            self.run(self.store.close())
        self.epoch += 1
        self.store = self._open()

    @rule(cut=st.integers(1, 60))
    def crash_with_a_torn_tail(self, cut: int) -> None:
        if self.store is not None:
            self.run(self.store.close())
            self.store = None
        with open(last_segment(self.directory), "ab") as out:
            out.write(batch(AddMessage("/queue/a", msg(10**6)))[:cut])
        self.epoch += 1
        self.store = self._open()  # the next master cuts it

    @invariant()
    def follows_cold_recovery(self) -> None:
        follow(self.follower)
        cold = plan_recovery(cold_copy(self.directory, self.tmp), WINDOW, 0)
        assert content(self.follower.state) == content(cold.state)

    def teardown(self) -> None:
        try:
            if self.store is not None:
                self.run(self.store.close())
            follow(self.follower)
            self.run(assert_stores_agree(self.directory, self.follower, self.tmp, self.epoch + 1))
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


def test_follower_matches_cold_recovery_for_any_program() -> None:
    run_state_machine_as_test(FollowMachine, settings=hsettings(
        max_examples=15, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))


# A writer process to kill ----------------------------------------------------------------------


async def _write_forever(directory: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = AppendLogStore(directory, settings(), EpochFence(1))
    await store.open()
    print("READY", flush=True)
    live: dict[str, list[str]] = {}
    subs: set[str] = set()
    seq = [0]
    for _ in range(100_000):
        await store.write(random_ops(rng, live, subs, seq))


@pytest.mark.slow  # a real writer process killed mid-stream, about 2 s per seed
@pytest.mark.parametrize("seed", range(3))
async def test_warm_equals_cold_after_kill9_of_a_concurrent_writer(tmp_path, seed):
    directory = tmp_path / "appendlog"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.stores.test_appendlog_follower", str(directory), str(seed)],
        stdout=subprocess.PIPE, cwd=Path(__file__).parents[3],
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"READY"
        f = Follower(directory, settings(), Recorder())
        deadline = time.monotonic() + 1.0 + random.Random(seed).random()
        while time.monotonic() < deadline:  # polls while the writer appends, rotates and compacts
            f.poll()
            time.sleep(0.01)
        kill9(proc)
    finally:
        reap(proc)
    with open(last_segment(directory), "ab") as out:  # make sure there is a torn tail to cut
        out.write(batch(AddMessage("/queue/a", msg(10**6)))[: 30 + seed])
    follow(f)
    assert f.rebuilds >= 1
    await assert_stores_agree(directory, f, tmp_path, epoch=2)


if __name__ == "__main__":
    asyncio.run(_write_forever(Path(sys.argv[1]), int(sys.argv[2])))
