"""LevelDBStore behaviour beyond the shared contract: key layout, group batches, epochs, LOCK."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import plyvel
import pytest

from config.model import StoreSettings
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    Fence,
    PutSubscription,
    RemoveMessage,
    StoreClosed,
    StoreCorrupted,
    StoredMessage,
    StoreError,
)
from stores.leveldb import keys
from stores.leveldb import store as leveldb_store_module
from stores.leveldb.store import LevelDBStore


class StaticFence(Fence):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def check(self) -> None:
        return None


def settings(**overrides: object) -> StoreSettings:
    return StoreSettings(type="leveldb", **overrides)  # type: ignore[arg-type]


def msg(n: int | str, queue: str = "/queue/a", producer: str | None = None) -> StoredMessage:
    return StoredMessage(f"m{n}", queue, {"n": str(n)}, f"body {n}".encode(), producer)


async def reopen(path: Path, **overrides: object) -> tuple[LevelDBStore, object]:
    store = LevelDBStore(path, settings(**overrides))
    return store, await store.open()


async def test_open_write_close_reopen_keeps_order_removals_and_subscriptions(tmp_path: Path) -> None:
    store, recovered = await reopen(tmp_path)
    assert recovered.queues == {} and recovered.subscriptions == []
    sub = DurableSubscription("c1:s1", "c1", "s1", "/topic/t", None)
    for i in range(5):
        await store.enqueue("/queue/a", msg(i))
    await store.write([PutSubscription(sub), AddMessage("c1:s1", msg("t", "/topic/t"))])
    await store.remove("/queue/a", "m1")
    await store.remove("/queue/a", "never-there")  # idempotent
    assert (await store.stats()).messages == 5
    await store.close()

    store, recovered = await reopen(tmp_path)
    assert [m.message_id for m in recovered.queues["/queue/a"]] == ["m0", "m2", "m3", "m4"]
    assert recovered.queues["c1:s1"] == [msg("t", "/topic/t")]
    assert recovered.subscriptions == [sub]
    await store.write([DropSubscription("c1:s1")])
    await store.close()

    store, recovered = await reopen(tmp_path)
    assert "c1:s1" not in recovered.queues and recovered.subscriptions == []
    await store.close()


async def test_queue_names_with_separator_bytes_stay_apart(tmp_path: Path) -> None:
    store, _ = await reopen(tmp_path)
    queues = ["a", "a\x00", "a\x00b", "a\x01", "a\x01\x01", "ab"]
    for i, queue in enumerate(queues):
        await store.enqueue(queue, msg(i, queue))
    await store.close()
    store, recovered = await reopen(tmp_path)
    assert {q: [m.message_id for m in ms] for q, ms in recovered.queues.items()} == {
        q: [f"m{i}"] for i, q in enumerate(queues)
    }
    await store.close()


async def test_reads_keep_queues_with_separator_bytes_apart(tmp_path: Path) -> None:
    store, _ = await reopen(tmp_path)
    queues = ["a", "a\x00", "a\x00b", "a\x01", "ab"]
    for i, queue in enumerate(queues * 2):
        await store.enqueue(queue, msg(i, queue))
    for i, queue in enumerate(queues):
        page = await store.read_batch(queue, None, 10)
        assert [m.message_id for m in page.messages] == [f"m{i}", f"m{i + len(queues)}"]
        assert page.next == store.position(queue, f"m{i + len(queues)}")
    await store.close()


async def test_a_value_that_is_not_the_indexed_message_is_corruption(tmp_path: Path) -> None:
    store, _ = await reopen(tmp_path)
    for i in range(3):
        await store.enqueue("/queue/a", msg(i))
    seq = store.position("/queue/a", "m1")
    assert seq is not None
    key = keys.message_key("/queue/a", seq)
    assert store._db is not None  # damage done through the store's own handle: LevelDB is locked
    store._db.put(key, keys.encode_message(msg(9)), sync=True)
    with pytest.raises(StoreCorrupted, match="holds message 'm9', not 'm1'") as raised:
        await store.read("/queue/a", "m1")
    assert repr(key) in raised.value.where
    store._db.put(key, b"\xc1 not msgpack", sync=True)
    with pytest.raises(StoreCorrupted) as raised:
        await store.read_batch("/queue/a", None, 10)
    assert repr(key) in raised.value.where
    assert await store.read("/queue/a", "m2") == msg(2)
    await store.close()


async def test_duplicate_window_keeps_the_last_ids_after_removal(tmp_path: Path) -> None:
    store, _ = await reopen(tmp_path, duplicate_window=3)
    for i in range(6):
        await store.enqueue("/queue/a", msg(i, producer=f"p{i}"))
    await store.enqueue("/queue/a", msg(9, producer="p3"))  # seen again: becomes newest
    for i in [*range(6), 9]:
        await store.remove("/queue/a", f"m{i}")
    await store.close()

    db = plyvel.DB(str(tmp_path))
    try:
        assert [v.decode() for _, v in db.iterator(prefix=keys.PRODUCER_PREFIX)] == ["p4", "p5", "p3"]
        assert list(db.iterator(prefix=keys.MESSAGE_PREFIX)) == []
    finally:
        db.close()
    store, recovered = await reopen(tmp_path, duplicate_window=2)  # a smaller window trims at open
    assert recovered.producer_ids == ["p5", "p3"]
    assert recovered.queues == {}
    await store.close()
    store, recovered = await reopen(tmp_path, duplicate_window=2)
    assert recovered.producer_ids == ["p5", "p3"]
    await store.close()


async def test_concurrent_writers_share_one_leveldb_write(tmp_path: Path) -> None:
    store, _ = await reopen(tmp_path)
    groups: list[int] = []
    store.on_commit = lambda count, _seconds: groups.append(count)
    await asyncio.gather(*(store.enqueue("/queue/a", msg(i)) for i in range(16)))
    assert sum(groups) == 16 and max(groups) > 1
    await store.close()
    store, recovered = await reopen(tmp_path)
    assert len(recovered.queues["/queue/a"]) == 16
    await store.close()


async def test_a_batch_that_cannot_be_encoded_fails_alone(tmp_path: Path) -> None:
    store, _ = await reopen(tmp_path)
    bad = StoredMessage("bad", "/queue/a", {"n": 1}, b"", None)  # type: ignore[dict-item]
    results = await asyncio.gather(
        store.enqueue("/queue/a", msg(1)), store.enqueue("/queue/a", bad), return_exceptions=True
    )
    assert results[0] is None and isinstance(results[1], StoreError)
    await store.close()
    store, recovered = await reopen(tmp_path)
    assert [m.message_id for m in recovered.queues["/queue/a"]] == ["m1"]
    await store.close()


async def test_readding_an_id_replaces_the_message_and_moves_it_last(tmp_path: Path) -> None:
    store, _ = await reopen(tmp_path)
    await store.write([AddMessage("/queue/a", msg(1)), AddMessage("/queue/a", msg(2))])
    replacement = StoredMessage("m1", "/queue/a", {}, b"new", None)
    await store.write([AddMessage("/queue/a", replacement), RemoveMessage("/queue/a", "m2")])
    assert (await store.stats()).messages == 1
    await store.close()
    store, recovered = await reopen(tmp_path)
    assert recovered.queues["/queue/a"] == [replacement]
    await store.close()


async def test_writes_after_close_or_before_open_raise_store_closed(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path, settings())
    with pytest.raises(StoreClosed):
        await store.enqueue("/queue/a", msg(1))
    await store.open()
    stats = await store.stats()
    assert stats.files > 0 and stats.bytes > 0 and stats.messages == 0
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreClosed):
        await store.enqueue("/queue/a", msg(1))


@pytest.mark.parametrize("policy", ["periodic", "never"])
async def test_relaxed_sync_policies_still_persist_on_close(tmp_path: Path, policy: str) -> None:
    store, _ = await reopen(tmp_path, sync=policy, sync_interval=0.02)
    await store.enqueue("/queue/a", msg(1))
    await asyncio.sleep(0.05)  # let the periodic sync run at least once
    await store.enqueue("/queue/a", msg(2))
    await store.close()
    store, recovered = await reopen(tmp_path)
    assert [m.message_id for m in recovered.queues["/queue/a"]] == ["m1", "m2"]
    await store.close()


async def test_a_newer_epoch_in_the_db_refuses_an_older_master(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path, settings(), StaticFence(5))
    await store.open()
    await store.enqueue("/queue/a", msg(1))
    await store.close()

    with pytest.raises(StoreClosed, match="epoch 5"):
        await LevelDBStore(tmp_path, settings(), StaticFence(4)).open()

    for epoch in (0, 5, 7):  # no fence (tools), the same master again, a newer master
        store = LevelDBStore(tmp_path, settings(), StaticFence(epoch))
        recovered = await store.open()
        assert [m.message_id for m in recovered.queues["/queue/a"]] == ["m1"]
        await store.close()
    with pytest.raises(StoreClosed, match="epoch 7"):
        await LevelDBStore(tmp_path, settings(), StaticFence(6)).open()


async def test_a_db_open_in_another_process_is_refused_clearly(tmp_path: Path, monkeypatch) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import plyvel, sys; db = plyvel.DB(sys.argv[1], create_if_missing=True); "
            "print('ready', flush=True); sys.stdin.read()",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        monkeypatch.setattr(leveldb_store_module, "LEVELDB_LOCK_WAIT", 0.3)
        with pytest.raises(StoreError, match="another process"):
            await LevelDBStore(tmp_path, settings()).open()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()
    store = LevelDBStore(tmp_path, settings())
    await store.open()
    await store.close()


async def test_open_waits_for_a_deposed_holder_to_let_go(tmp_path: Path) -> None:
    """A deposed master still holds LevelDB's LOCK for a moment after the takeover: wait, then open."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import plyvel, sys, time; db = plyvel.DB(sys.argv[1], create_if_missing=True); "
            "print('ready', flush=True); time.sleep(0.5); db.close()",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        store = LevelDBStore(tmp_path, settings())
        recovered = await store.open()
        assert recovered.queues == {}
        await store.close()
    finally:
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()


async def test_a_reopened_backlog_drains_by_pages_without_index_lookups(tmp_path: Path, monkeypatch) -> None:
    """The removal of a message a page returned uses the seq the page read (stores/leveldb/hints.py):
    pages after many removals stay in order, removals stay idempotent and the depths exact."""
    store, _ = await reopen(tmp_path)
    for i in range(0, 600, 50):
        await store.write([AddMessage("/queue/a", msg(n)) for n in range(i, i + 50)])
    await store.close()
    lookups: list[bytes] = []
    real = LevelDBStore._indexed

    def counted(self: LevelDBStore, index_key: bytes) -> int | None:
        lookups.append(index_key)
        return real(self, index_key)

    monkeypatch.setattr(LevelDBStore, "_indexed", counted)
    store, recovered = await reopen(tmp_path, cursor_window=4096)
    try:
        seen = [m.message_id for m in recovered.queues["/queue/a"]]  # type: ignore[attr-defined]
        after = store.position("/queue/a", seen[-1])
        again: list[bytes] = []  # what only a lookup can tell: these are no longer stored
        await store.write([RemoveMessage("/queue/a", mid) for mid in seen])
        while True:
            page = await store.read_batch("/queue/a", after, 64)
            if not page.messages:
                break
            after = page.next
            ids = [m.message_id for m in page.messages]
            seen += ids
            await store.write([RemoveMessage("/queue/a", mid) for mid in ids[: len(ids) // 2]])
            await store.write([RemoveMessage("/queue/a", mid) for mid in ids])  # half of them again
            again += [keys.index_key("/queue/a", mid) for mid in ids[: len(ids) // 2]]
        assert seen == [f"m{n}" for n in range(600)]
        assert lookups == again and again
        assert (await store.stats()).messages == 0
        await store.remove("/queue/a", "m3")  # gone, and known to be: no lookup, no count below 0
        assert (await store.stats()).messages == 0
    finally:
        await store.close()
    store, recovered = await reopen(tmp_path)
    await store.close()
    assert recovered.queues == {}  # type: ignore[attr-defined]
