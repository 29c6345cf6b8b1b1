"""The LevelDB store's counters (FORMAT.md: the i/ and d/ keys): exact after any sequence of
writes and reopens, the same as a full scan of the messages; built once for a format-1 directory;
and an open that reads them instead of every message."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import plyvel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.model import StoreSettings
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    Op,
    PutSubscription,
    RemoveMessage,
    StoreCorrupted,
    StoredMessage,
)
from stores.leveldb import keys
from stores.leveldb.store import LevelDBStore

QUEUES = ["/queue/a", "/queue/b\x00c", "sub:x"]  # one name with the separator byte in it
IDS = [f"m{i}" for i in range(12)]


def store_settings(**overrides: object) -> StoreSettings:
    return StoreSettings(type="leveldb", cursor_window=1024, **overrides)  # type: ignore[arg-type]


def msg(mid: str, queue: str) -> StoredMessage:
    return StoredMessage(mid, queue, {"k": mid}, mid.encode() * 50, None)


def full_scan(path: Path) -> tuple[dict[str, list[str]], dict[str, dict[str, int]], dict[str, int], int]:
    """What the DB holds, read from every key: messages in order, the index, the depths, meta/seq."""
    db = plyvel.DB(str(path))
    try:
        messages: dict[str, list[str]] = {}
        seqs: dict[str, dict[str, int]] = {}
        for key, value in db.iterator(prefix=keys.MESSAGE_PREFIX):
            queue, seq = keys.parse_message_key(key)
            mid = keys.decode_message(value, repr(key)).message_id
            messages.setdefault(queue, []).append(mid)
            seqs.setdefault(queue, {})[mid] = seq
        index: dict[str, dict[str, int]] = {}
        for key, value in db.iterator(prefix=keys.INDEX_PREFIX):
            queue = keys.unescape(key[len(keys.INDEX_PREFIX) : key.index(b"\x00")])
            mid = keys.parse_index_id(key, keys.index_prefix(queue))
            index.setdefault(queue, {})[mid] = keys.parse_u64(value, repr(key))
        depths = {keys.parse_depth_key(k): keys.parse_u64(v, repr(k))
                  for k, v in db.iterator(prefix=keys.DEPTH_PREFIX)}
        assert index == seqs, "the i/ keys are not the m/ keys"
        next_seq = keys.parse_u64(db.get(keys.META_SEQ) or keys.u64(0), "meta/seq")
        highest = max((s for ids in seqs.values() for s in ids.values()), default=None)
        assert highest is None or next_seq > highest, "meta/seq would reuse a sequence number"
        return messages, seqs, depths, next_seq
    finally:
        db.close()


def check_counters(path: Path, model: dict[str, list[str]]) -> None:
    messages, _, depths, _ = full_scan(path)
    assert messages == {q: ids for q, ids in model.items() if ids}
    assert depths == {q: len(ids) for q, ids in messages.items()}


def apply(model: dict[str, list[str]], op: Op) -> None:
    """The contract's meaning of each op, on a plain model."""
    if isinstance(op, AddMessage):
        ids = model.setdefault(op.queue, [])
        if op.message.message_id in ids:
            ids.remove(op.message.message_id)
        ids.append(op.message.message_id)
    elif isinstance(op, RemoveMessage):
        if op.message_id in model.get(op.queue, []):
            model[op.queue].remove(op.message_id)
    elif isinstance(op, DropSubscription):
        model.pop(op.key, None)


queues = st.sampled_from(QUEUES)
message_ids = st.sampled_from(IDS)
ops = st.one_of(
    st.builds(lambda q, m: AddMessage(q, msg(m, q)), queues, message_ids),
    st.builds(RemoveMessage, queues, message_ids),
    st.builds(lambda q: PutSubscription(DurableSubscription(q, "c", "n", "/topic/t")), queues),
    st.builds(DropSubscription, queues),
)
# A step: a batch of ops written as one call, several calls at once (one group commit), a reopen,
# or such a group written while every queue is read by pages (whose seqs the removals then use).
group = st.lists(st.lists(ops, min_size=1, max_size=4), min_size=1, max_size=3)
steps = st.lists(st.one_of(st.just("reopen"), group, st.tuples(st.just("read"), group)), max_size=12)


async def read_all(store: LevelDBStore, queue: str) -> list[str]:
    ids: list[str] = []
    after: int | None = None
    while (page := await store.read_batch(queue, after, 2)).messages:
        ids += [m.message_id for m in page.messages]
        after = page.next
    return ids


async def run_steps(path: Path, plan: list[object]) -> None:
    model: dict[str, list[str]] = {}
    store = LevelDBStore(path, store_settings())
    await store.open()
    try:
        for step in plan:
            if step == "reopen":
                await store.close()
                check_counters(path, model)
                store = LevelDBStore(path, store_settings())
                recovered = await store.open()
                depths = {q: recovered.depth(q) for q in recovered.queues}
                assert depths == {q: len(ids) for q, ids in model.items() if ids}
                continue
            reading = isinstance(step, tuple)
            if reading:
                step = step[1]
            assert isinstance(step, list)
            reads = [read_all(store, queue) for queue in QUEUES] if reading else []
            await asyncio.gather(*(store.write(batch) for batch in step), *reads)
            for batch in step:  # concurrent calls are applied in the order they were submitted
                for op in batch:
                    apply(model, op)
            for queue, ids in model.items():  # positions answer from memory or from the i/ keys
                assert all(store.position(queue, mid) is not None for mid in ids)
            assert (await store.stats()).messages == sum(len(ids) for ids in model.values())
            if reading:  # a quiet read: exactly the model
                assert {q: await read_all(store, q) for q in QUEUES} == {q: model.get(q, []) for q in QUEUES}
    finally:
        await store.close()
    check_counters(path, model)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
def test_counters_equal_a_full_scan_after_any_writes_and_reopens(plan: list[object]) -> None:
    with tempfile.TemporaryDirectory(prefix="leveldb-counters-") as tmp:
        asyncio.run(run_steps(Path(tmp) / "db", plan))


def downgrade_to_format_1(path: Path, stale: bool = False) -> None:
    """Leave what format 1 had: the same m/, s/, p/ and meta/ keys, without i/ and d/ (`stale`:
    plus what a cut-short upgrade followed by an older version's writes could leave)."""
    db = plyvel.DB(str(path))
    try:
        with db.write_batch(sync=True) as batch:
            for prefix in (keys.INDEX_PREFIX, keys.DEPTH_PREFIX):
                for key in db.iterator(prefix=prefix, include_value=False):
                    batch.delete(key)
            batch.put(keys.META_FORMAT, b"1")
            if stale:
                batch.put(keys.index_key("/queue/a", "gone"), keys.u64(1))
                batch.put(keys.depth_key("/queue/a"), keys.u64(999))
                batch.put(keys.depth_key("/queue/none"), keys.u64(3))
    finally:
        db.close()


@pytest.mark.parametrize("stale", [False, True])
async def test_a_format_1_directory_is_upgraded_once_with_a_full_scan(
    tmp_path: Path, stale: bool, caplog: pytest.LogCaptureFixture
) -> None:
    model: dict[str, list[str]] = {}
    store = LevelDBStore(tmp_path, store_settings())
    await store.open()
    for i in range(30):
        op = AddMessage(QUEUES[i % 3], msg(f"m{i}", QUEUES[i % 3]))
        await store.write([op])
        apply(model, op)
    for i in range(0, 30, 4):
        op = RemoveMessage(QUEUES[i % 3], f"m{i}")
        await store.write([op])
        apply(model, op)
    await store.close()
    downgrade_to_format_1(tmp_path, stale)

    with caplog.at_level(logging.INFO, logger="stores.leveldb.store"):
        store = LevelDBStore(tmp_path, store_settings())
        recovered = await store.open()
    assert "is in format 1: building its index" in caplog.text
    assert {q: recovered.depth(q) for q in recovered.queues} == {q: len(ids) for q, ids in model.items()}
    later = [AddMessage("/queue/a", msg("after", "/queue/a")), RemoveMessage("/queue/b\x00c", "m1")]
    await store.write(later)
    for op in later:
        apply(model, op)
    await store.close()
    check_counters(tmp_path, model)
    db = plyvel.DB(str(tmp_path))
    assert db.get(keys.META_FORMAT) == str(keys.FORMAT_VERSION).encode()
    db.close()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="stores.leveldb.store"):
        store = LevelDBStore(tmp_path, store_settings())
        await store.open()
        await store.close()
    assert "format 1" not in caplog.text  # once only


async def test_an_open_reads_the_heads_not_the_messages_behind_them(tmp_path: Path) -> None:
    """A damaged value far behind the head does not stop an open (it reads the counters and seeks
    to each head); reading that message reports the damage."""
    store = LevelDBStore(tmp_path, store_settings())
    await store.open()
    for i in range(200):
        await store.enqueue("/queue/a", msg(f"m{i}", "/queue/a"))
    deep = store.position("/queue/a", "m150")
    assert deep is not None
    await store.close()
    db = plyvel.DB(str(tmp_path))
    db.put(keys.message_key("/queue/a", deep), b"\xc1 not msgpack", sync=True)
    db.close()

    store = LevelDBStore(tmp_path, store_settings())
    recovered = await store.open()
    head = recovered.queues["/queue/a"]
    assert 0 < len(head) < 150 and recovered.depth("/queue/a") == 200
    assert store.position("/queue/a", "m150") == deep  # from its i/ key
    with pytest.raises(StoreCorrupted):
        await store.read("/queue/a", "m150")
    await store.close()


async def test_a_depth_the_keys_contradict_is_refused_as_corruption(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path, store_settings())
    await store.open()
    await store.enqueue("/queue/a", msg("m1", "/queue/a"))
    await store.close()
    db = plyvel.DB(str(tmp_path))
    db.put(keys.depth_key("/queue/empty"), keys.u64(2), sync=True)
    db.close()
    store = LevelDBStore(tmp_path, store_settings())
    with pytest.raises(StoreCorrupted, match="counts 2 messages"):
        await store.open()
