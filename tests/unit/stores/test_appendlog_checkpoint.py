"""The append log's index checkpoint: the sized column codec, recovery from a checkpoint plus the
log after it (the same state as a full replay), and every checkpoint recovery must not trust
(damaged, stale after compaction, beyond a deposed master's seal), all on real files."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from config.model import StoreSettings
from stores import columns as codec
from stores.appendlog import checkpoint as ckpt
from stores.appendlog.follower import Follower
from stores.appendlog.recovery import Plan, plan_recovery
from stores.appendlog.segments import list_segments
from stores.appendlog.state import LogState
from stores.appendlog.store import AppendLogStore
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    PutSubscription,
    RemoveMessage,
    StoredMessage,
)
from stores.entries import Prefixes, QueueEntries
from stores.reads import Location
from tests.helpers.fences import EpochFence
from tests.unit.stores.contract import recover
from tests.unit.stores.test_appendlog_follower import follow
from tests.unit.stores.test_crash import LINE_TIMEOUT, REPO, Acks, check, drain
from tests.unit.stores.test_journal_follower import Recorder

SEGMENT = 64 * 1024
WINDOW = 4


def settings(**overrides: object) -> StoreSettings:
    values: dict[str, object] = {"type": "appendlog", "appendlog_segment_size": SEGMENT,
                                 "checkpoint_interval": 60.0, "duplicate_window": WINDOW}
    return StoreSettings(**(values | overrides))  # type: ignore[arg-type]


def msg(n: int, size: int = 100, producer: str | None = None, queue: str = "/queue/a") -> StoredMessage:
    return StoredMessage(f"ID:p-{n}", queue, {"n": str(n)}, b"x" * size, producer)


def view(state: LogState) -> dict[str, Any]:
    """Everything recovery rebuilds, positions aside (they are not on disk: only their order is)."""
    queues = {}
    for queue, entries in state.queues.items():
        sizes = entries.packed().sizes
        assert sizes is not None
        queues[queue] = list(zip(entries.items(), sizes, strict=True))
    return {"queues": queues, "subs": dict(state.subscriptions), "producers": list(state.producers),
            "messages": state.messages, "live_bytes": state.live_bytes, "segment_live": state.segment_live}


def plan_view(plan: Plan) -> dict[str, Any]:
    return {"state": view(plan.state), "epoch": plan.epoch, "next": plan.next_number, "sizes": plan.sizes,
            "seal": plan.seal, "truncate": plan.truncate, "discard": plan.discard, "obsolete": plan.obsolete,
            "base": plan.replaced_below, "quarantine": plan.quarantine}


def full_replay(directory: Path, window: int = WINDOW) -> Plan:
    """The plan of a recovery without the checkpoint (moved aside for the call, then put back)."""
    path = directory / ckpt.NAME
    aside = directory.parent / f"{directory.name}.checkpoint-aside"
    moved = path.exists()
    if moved:
        path.rename(aside)
    try:
        return plan_recovery(directory, window, 0)
    finally:
        if moved:
            aside.rename(path)


def assert_same_as_full_replay(directory: Path, resumed: bool = True) -> Plan:
    plan = plan_recovery(directory, WINDOW, 0)
    assert (plan.resumed is not None) == resumed
    assert plan_view(plan) == plan_view(full_replay(directory))
    return plan


# -- the codec ------------------------------------------------------------------------------


def sized_queue(n: int) -> QueueEntries:
    entries = QueueEntries(Prefixes(), sized=True)
    for i in range(n):
        message_id = f"ID:p-{i}" if i % 5 else f"client-{i}x"  # every fifth an extra
        entries.add(message_id, i + 1, Location(i // 10 + 1, 100 * i, 50 + i), size=1000 + i)
    return entries


def test_a_sized_queue_round_trips_through_the_codec() -> None:
    entries = sized_queue(200)
    entries.remove("ID:p-3")
    packed = entries.packed()
    assert packed.sizes is not None
    packer = msgpack.Packer(use_bin_type=True)
    data = b"".join(bytes(part) for part in codec.encode_queue(packer, "/queue/a", packed))
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(packer.pack_array_header(1) + data)
    [(queue, back)] = codec.decode_queues(unpacker, entries._prefixes, sized=True)
    assert queue == "/queue/a" and back == packed
    restored = QueueEntries.of(entries._prefixes, back, 1)
    assert list(restored.items()) == list(entries.items())
    assert [restored.pop(mid) for mid in list(restored)] == [entries.pop(mid) for mid in list(entries)]


def test_the_journal_format_stays_five_columns_and_each_reader_refuses_the_other() -> None:
    packer = msgpack.Packer(use_bin_type=True)
    packed = sized_queue(20).packed()
    unsized = packed._replace(sizes=None)
    for written, sized in ((packed, False), (unsized, True)):
        data = b"".join(bytes(p) for p in codec.encode_queue(packer, "/q", written))
        assert data[0] == (0x96 if written.sizes is not None else 0x95)  # fixarray of 6, of 5
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(packer.pack_array_header(1) + data)
        with pytest.raises(ValueError, match="is not"):
            codec.decode_queues(unpacker, Prefixes(["ID:p-"]), sized=sized)


def test_a_sizes_column_of_another_length_is_refused() -> None:
    packed = sized_queue(10).packed()
    assert packed.sizes is not None
    short = packed._replace(sizes=array("I", packed.sizes[:-1]))
    with pytest.raises(ValueError, match="differ in length"):
        codec.checked(short, Prefixes(["ID:p-"]))


def test_a_checkpoint_encodes_and_decodes_to_itself() -> None:
    state = LogState(WINDOW)
    for i in range(50):
        queue = "/queue/a" if i % 3 else "/queue/b"
        state.add(queue, msg(i, producer=f"prod-{i % 6}"), Location(1, i * 10, 10))
    state.remove("/queue/a", "ID:p-4")
    state.put_subscription(DurableSubscription("c:s", "c", "s", "/topic/t", "x = 1", "alice"))
    cp = ckpt.snapshot(state, (1, 500), (480, 0xDEADBEEF), {1: 3}, 1)
    back = ckpt.decode(ckpt.encode(cp))
    assert back == cp
    restored = LogState(WINDOW)
    restored.restore(back.prefixes, back.queues, back.subscriptions, back.producers)
    assert view(restored) == view(state)


# -- recovery from a checkpoint ---------------------------------------------------------------


async def workload(store: AppendLogStore, start: int, count: int, checkpoint_at: int | None = None) -> None:
    sub = DurableSubscription(f"c:s{start}", "c", f"s{start}", "/topic/t", None)
    await store.write([PutSubscription(sub), AddMessage(sub.key, msg(start, queue="/topic/t"))])
    for i in range(start, start + count):
        await store.write([AddMessage("/queue/a" if i % 4 else "/queue/b",
                                      msg(i, size=600, producer=f"prod-{i % 7}"))])
        if i % 3 == 0:
            await store.write([RemoveMessage("/queue/a" if (i - 3) % 4 else "/queue/b", f"ID:p-{i - 3}")])
        if i == checkpoint_at:
            await store.checkpoint()


async def test_recovery_from_a_checkpoint_and_the_log_after_it_is_a_full_replay(tmp_path: Path) -> None:
    store = AppendLogStore(tmp_path, settings())
    await store.open()
    await workload(store, 0, 300, checkpoint_at=200)  # several segments, the checkpoint mid-way
    await store.close()
    assert len(list_segments(tmp_path)) >= 3
    plan = assert_same_as_full_replay(tmp_path)
    assert plan.resumed is not None and plan.replayed > 0

    store = AppendLogStore(tmp_path, settings())
    recovered = await store.open()
    assert recovered.depth("/queue/a") == plan.state.messages - sum(
        len(e) for q, e in plan.state.queues.items() if q != "/queue/a")
    await store.close()


async def test_an_open_after_a_checkpoint_that_covers_everything_writes_none_at_first(tmp_path: Path) -> None:
    store = AppendLogStore(tmp_path, settings(checkpoint_interval=0.05))
    await store.open()
    await workload(store, 0, 40)
    await store.checkpoint()
    await store.close()
    written = (tmp_path / ckpt.NAME).read_bytes()
    store = AppendLogStore(tmp_path, settings(checkpoint_interval=0.05))
    await store.open()
    await asyncio.sleep(0.3)  # six intervals with nothing new: the file is not rewritten
    assert (tmp_path / ckpt.NAME).read_bytes() == written
    await workload(store, 100, 5)
    for _ in range(100):  # the next interval writes one: bounded wait
        if (tmp_path / ckpt.NAME).read_bytes() != written:
            break
        await asyncio.sleep(0.05)
    await store.close()
    assert (tmp_path / ckpt.NAME).read_bytes() != written
    assert_same_as_full_replay(tmp_path)


async def checkpointed(directory: Path) -> None:
    store = AppendLogStore(directory, settings())
    await store.open()
    await workload(store, 0, 120, checkpoint_at=80)
    await store.close()


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "empty"])
async def test_a_damaged_checkpoint_is_a_warning_and_a_full_replay(
        tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    await checkpointed(tmp_path)
    path = tmp_path / ckpt.NAME
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        del data[len(data) - 7:]
    elif damage == "magic":
        data[7:8] = b"9"
    else:
        data.clear()
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="stores.appendlog.recovery"):
        plan = assert_same_as_full_replay(tmp_path, resumed=False)
    assert any(r.levelno == logging.WARNING and ckpt.NAME in r.getMessage() and "unreadable" in r.getMessage()
               for r in caplog.records)
    assert plan.state.messages > 0


def rewrite(path: Path, **changes: Any) -> None:
    cp = ckpt.decode(path.read_bytes())
    for name, value in changes.items():
        setattr(cp, name, value)
    path.write_bytes(ckpt.encode(cp))


@pytest.mark.parametrize("how", ["beyond the end", "another epoch", "a missing segment", "another window",
                                 "another record", "not a record boundary"])
async def test_a_checkpoint_that_does_not_describe_the_log_is_stale(
        tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture) -> None:
    await checkpointed(tmp_path)
    path = tmp_path / ckpt.NAME
    cp = ckpt.decode(path.read_bytes())
    number, offset = cp.pos
    if how == "beyond the end":
        # The next open sealed the checkpoint's segment at its end: a position past it is not the log's.
        size = (tmp_path / f"log-{number}.seg").stat().st_size
        rewrite(path, pos=(number, size + 1))
    elif how == "another epoch":
        rewrite(path, segments=[(n, e + 1 if n == number else e) for n, e in cp.segments])
    elif how == "a missing segment":
        rewrite(path, segments=[(0, 0), *cp.segments])
    elif how == "another record":  # the same numbers and epochs, another history (a copied file)
        rewrite(path, last=(cp.last[0], cp.last[1] ^ 1))
    elif how == "not a record boundary":
        rewrite(path, pos=(number, offset - 1))
    else:
        rewrite(path, window=WINDOW + 1)
    with caplog.at_level(logging.INFO, logger="stores.appendlog.recovery"):
        assert_same_as_full_replay(tmp_path, resumed=False)
    assert any(ckpt.NAME in r.getMessage() and "stale" in r.getMessage() for r in caplog.records)


async def test_a_deposed_masters_checkpoint_past_the_new_masters_seal_is_stale(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = AppendLogStore(tmp_path, settings(), EpochFence(1))
    await old.open()
    await workload(old, 0, 30)
    new = AppendLogStore(tmp_path, settings(), EpochFence(2))  # takes over: seals old's segment
    await new.open()
    await workload(old, 1000, 30)  # the deposed master goes on, past the seal...
    await old.checkpoint()  # ...and writes a checkpoint that counts those writes
    await old.close()
    await workload(new, 2000, 10)
    await new.close()
    with caplog.at_level(logging.WARNING, logger="stores.appendlog.recovery"):
        plan = plan_recovery(tmp_path, WINDOW, 2)
    assert plan.resumed is None
    assert any("beyond the honoured end" in r.getMessage() for r in caplog.records)
    live = {mid for entries in plan.state.queues.values() for mid in entries}
    assert not live & {f"ID:p-{i}" for i in range(1000, 1030)} and "ID:p-2005" in live
    assert plan_view(plan) == plan_view(full_replay(tmp_path))


def compacting() -> StoreSettings:
    return settings(appendlog_compact_live_fraction=0.9)


async def test_compaction_deletes_the_checkpoint_first_and_an_old_copy_is_stale(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = AppendLogStore(tmp_path, settings())
    await store.open()
    await workload(store, 0, 100)
    await store.checkpoint()
    kept = (tmp_path / ckpt.NAME).read_bytes()
    await store.close()
    store = AppendLogStore(tmp_path, compacting())
    await store.open()
    first = list_segments(tmp_path)[0]
    for i in range(200):  # churn until compaction replaces the first segments
        await store.write([AddMessage("/queue/c", msg(5000 + i, size=2000))])
        await store.write([RemoveMessage("/queue/c", f"ID:p-{5000 + i}")])
        if list_segments(tmp_path)[0] != first:
            break
    await store.reclaim()
    assert list_segments(tmp_path)[0] != first, "compaction did not run"
    assert not (tmp_path / ckpt.NAME).exists()
    await store.close()
    # A crash that left the old checkpoint (say, an older build's order) must not be trusted.
    (tmp_path / ckpt.NAME).write_bytes(kept)
    with caplog.at_level(logging.WARNING, logger="stores.appendlog.recovery"):
        assert_same_as_full_replay(tmp_path, resumed=False)
    assert any("stale" in r.getMessage() for r in caplog.records)


async def test_a_checkpoint_write_cut_short_leaves_the_previous_one_in_use(tmp_path: Path) -> None:
    """What kill -9 during a write leaves: the previous checkpoint and a partial temp file."""
    await checkpointed(tmp_path)
    (tmp_path / ckpt.TEMP_NAME).write_bytes((tmp_path / ckpt.NAME).read_bytes()[:100])
    assert_same_as_full_replay(tmp_path)
    store = AppendLogStore(tmp_path, settings())
    await store.open()
    assert not (tmp_path / ckpt.TEMP_NAME).exists()
    await store.close()


# -- random workloads -------------------------------------------------------------------------

QUEUES = ("/queue/a", "/queue/b", "sub:1", "sub:2")
steps = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(QUEUES), st.integers(0, 40), st.integers(0, 3000),
              st.one_of(st.none(), st.sampled_from(["p1", "p2", "p3", "p4", "p5", "p6"]))),
    st.tuples(st.just("remove"), st.sampled_from(QUEUES), st.integers(0, 40)),
    st.tuples(st.just("subscribe"), st.sampled_from(QUEUES[2:])),
    st.tuples(st.just("unsubscribe"), st.sampled_from(QUEUES[2:])),
    st.tuples(st.just("churn"), st.integers(20000, 60000)),  # dead bytes: compaction comes
    st.tuples(st.just("checkpoint")),
    st.tuples(st.just("reopen")),
), min_size=1, max_size=60)


async def run_steps(directory: Path, program: list[tuple[Any, ...]]) -> None:
    store = AppendLogStore(directory, compacting())
    await store.open()
    try:
        for step in program:
            kind = step[0]
            if kind == "add":
                _, queue, n, size, producer = step
                await store.write([AddMessage(queue, msg(n, size=size, producer=producer, queue=queue))])
            elif kind == "remove":
                await store.write([RemoveMessage(step[1], f"ID:p-{step[2]}")])
            elif kind == "subscribe":
                await store.write([PutSubscription(DurableSubscription(step[1], "c", step[1], "/topic/t"))])
            elif kind == "unsubscribe":
                await store.write([DropSubscription(step[1])])
            elif kind == "churn":
                await store.write([AddMessage("/queue/c", msg(99, size=step[1], queue="/queue/c"))])
                await store.write([RemoveMessage("/queue/c", "ID:p-99")])
            elif kind == "checkpoint":
                await store.checkpoint()
            else:
                await store.close()
                assert_same_as_full_replay(directory, resumed=(directory / ckpt.NAME).exists())
                store = AppendLogStore(directory, compacting())
                await store.open()
    finally:
        await store.close()


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=steps)
def test_random_workloads_recover_the_same_from_a_checkpoint(program: list[tuple[Any, ...]]) -> None:
    directory = Path(tempfile.mkdtemp(prefix="alckp-"))
    try:
        asyncio.run(run_steps(directory, program))
        assert_same_as_full_replay(directory, resumed=(directory / ckpt.NAME).exists())
    finally:
        shutil.rmtree(directory)


# -- kill -9 while a checkpoint is being written ----------------------------------------------

KILLS = 6


async def kill_during_a_checkpoint(data_dir: Path, run: int, seed: int, log: Path) -> tuple[Acks, bool]:
    """Run the workload (tests/helpers/storeproc.py) with a checkpoint every 10 ms; SIGKILL it the
    moment a checkpoint's temp file appears (or after 3 s). Whether the kill caught one."""
    acks = Acks()
    ready = asyncio.Event()
    temp = data_dir / "appendlog" / ckpt.TEMP_NAME
    with open(log, "ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.helpers.storeproc", "appendlog", str(data_dir), str(run), str(seed),
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            env={**os.environ, "STOREPROC_CHECKPOINT_INTERVAL": "0.01"},
        )  # fmt: skip
        assert proc.stdout is not None
        reader = asyncio.create_task(drain(proc.stdout, acks, ready))
        caught = False
        try:
            await asyncio.wait_for(ready.wait(), LINE_TIMEOUT)
            await asyncio.sleep(0.2 + run * 0.05)  # the state grows: later checkpoints take longer
            deadline = time.monotonic() + 3.0
            while not (caught := temp.exists()) and time.monotonic() < deadline:
                time.sleep(0.0002)  # not await: the loop must not sleep a whole scheduler tick
        finally:
            proc.kill()
            await asyncio.wait_for(reader, LINE_TIMEOUT)
            code = await asyncio.wait_for(proc.wait(), LINE_TIMEOUT)
            assert code == -signal.SIGKILL, f"the workload exited by itself with code {code}"
    return acks, caught


@pytest.mark.slow
async def test_kill9_during_checkpoint_writes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    baseline: set[tuple[str, str]] = set()
    caught = 0
    for run in range(KILLS):
        log = tmp_path / f"storeproc-{run}.log"
        acks, hit = await kill_during_a_checkpoint(data_dir, run, seed, log)
        caught += hit
        where = f"seed={seed} run={run}; workload stderr:\n{log.read_text(errors='replace')[-2000:]}"
        directory = data_dir / "appendlog"
        plan = plan_recovery(directory, StoreSettings().duplicate_window, 0)
        assert plan_view(plan) == plan_view(full_replay(directory, StoreSettings().duplicate_window)), where
        assert run == 0 or plan.resumed is not None, f"no checkpoint was used: {where}"
        baseline = check(await recover("appendlog", data_dir), acks, baseline, run)
    assert caught, "no kill landed while a checkpoint's file was being written"


# -- takeover ---------------------------------------------------------------------------------


async def test_after_a_warm_takeover_the_old_masters_checkpoint_still_serves_a_cold_open(
        tmp_path: Path) -> None:
    """The new master writes no checkpoint until something changes; the old master's, of a lower
    epoch, still describes a prefix of the log (the new segment seals the old at its end)."""
    old = AppendLogStore(tmp_path, settings(), EpochFence(1))
    await old.open()
    await workload(old, 0, 60, checkpoint_at=40)
    follower = Follower(tmp_path, settings(), Recorder())
    follow(follower)
    await old.close()  # what the old master wrote after its checkpoint is replayed from the log
    written = (tmp_path / ckpt.NAME).read_bytes()
    new = AppendLogStore(tmp_path, settings(checkpoint_interval=0.05), EpochFence(2))
    assert new.follow_from(follower)
    await new.open()
    assert new.warm
    await asyncio.sleep(0.3)  # six intervals with nothing written: no checkpoint
    assert (tmp_path / ckpt.NAME).read_bytes() == written
    await new.close()
    plan = plan_recovery(tmp_path, WINDOW, 2)
    assert plan.resumed is not None and plan.epoch == 2
    assert plan_view(plan) == plan_view(full_replay(tmp_path))
