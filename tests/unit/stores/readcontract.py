"""The read seam's part of the store contract (stores/base.py, "Reads").

`ReadContract` runs beside `StoreContract` in test_contract.py, once per store, with its
fixtures. Small files (the minimum sizes StoreSettings allows) make reads cross data files and
segments, and compaction move live messages into new files, as it does in production.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from stores.base import (
    AddMessage,
    DropSubscription,
    PutSubscription,
    RemoveMessage,
    Store,
    StoreClosed,
    StoredMessage,
)
from tests.unit.stores.contract import FILE_STORE_KINDS, SUB, message, opened

SMALL = {"journal_max_file_size": 64 * 1024, "appendlog_segment_size": 64 * 1024}
FIRST_FILE = {"journal": "db-1.log", "appendlog": "log-1.seg"}


async def read_all(store: Store, queue: str, limit: int, quiet: bool = True) -> list[StoredMessage]:
    """Every message of `queue`, a page of at most `limit` at a time, checking how pages chain;
    `quiet`: nothing writes meanwhile, so a short page must be the last."""
    got: list[StoredMessage] = []
    after: int | None = None
    while True:
        page = await store.read_batch(queue, after, limit)
        assert len(page.messages) <= limit
        if not page.messages:
            assert page.next == after, "an empty page must leave the position where it was"
            return got
        assert page.next is not None and (after is None or page.next > after)
        got.extend(page.messages)
        if quiet and len(page.messages) < limit:  # a short page means the queue had no more
            assert (await store.read_batch(queue, page.next, limit)).messages == []
            return got
        after = page.next


async def compact(store: Store) -> None:
    """Make the store move live messages out of its oldest files now, as its maintenance would."""
    if store.kind == "journal":
        await store.cleanup()  # type: ignore[attr-defined]
    elif store.kind == "appendlog":
        for _ in range(1000):  # writes start it; it runs on the writer thread in milliseconds
            if store._compaction is None:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
    else:
        await asyncio.to_thread(store._db.compact_range)  # type: ignore[attr-defined]


def numbered(n: int, size: int = 1024) -> StoredMessage:
    return message(f"m{n}", body=bytes([n % 251]) * size)


CHURNED, PIN_EVERY = 400, 80  # one pinned record per 64 KiB file: worth compacting
PINNED = [numbered(n) for n in range(0, CHURNED, PIN_EVERY)]  # the churn never removes these


async def churn(store: Store, done: asyncio.Event) -> None:
    """Add numbered messages ten at a time, remove all but the pinned ones, compact now and then."""
    for start in range(0, CHURNED, 10):
        batch = range(start, start + 10)
        await store.write([AddMessage("/queue/a", numbered(n)) for n in batch])
        await store.write([RemoveMessage("/queue/a", f"m{n}") for n in batch if n % PIN_EVERY])
        if start % 100 == 90:
            await compact(store)
    done.set()


async def keep_reading(store: Store, done: asyncio.Event) -> int:
    """Read the queue through, page by page, until the churn is done; return how many times."""
    rounds = 0
    while not done.is_set() or rounds == 0:
        got = await read_all(store, "/queue/a", 4, quiet=False)
        numbers = [int(m.message_id[1:]) for m in got]
        assert numbers == sorted(numbers) and got == [numbered(n) for n in numbers]
        # Messages are added in number order, so a pinned one older than any message seen was seen.
        newest = max(numbers, default=-1)
        assert [m for m in got if m in PINNED] == [m for m in PINNED if int(m.message_id[1:]) <= newest]
        for m in got:
            if m in PINNED:
                assert await store.read("/queue/a", m.message_id) == m
        rounds += 1
    return rounds


class ReadContract:
    kind: str

    async def test_read_by_id_returns_what_was_written(self, data_dir: Path) -> None:
        binary = message("m2", body=bytes(range(256)) + os.urandom(100_000), producer_id="p2")
        topic = message("t1", destination="/topic/t", headers={"ünï": "çødé", "a:b": "x\ny"})
        async with opened(self.kind, data_dir) as (store, _):
            await store.write([PutSubscription(SUB), AddMessage("/queue/a", message("m1"))])
            await store.write([AddMessage("/queue/a", binary), AddMessage(SUB.key, topic)])
            assert await store.read("/queue/a", "m1") == message("m1")
            assert await store.read("/queue/a", "m2") == binary
            assert await store.read(SUB.key, "t1") == topic
            assert await store.read("/queue/a", "t1") is None  # stored, but under another queue

    async def test_unknown_queue_and_unknown_id(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            empty = await store.read_batch("/queue/a", None, 10)
            assert (empty.messages, empty.next) == ([], None)
            await store.enqueue("/queue/a", message("m1"))
            assert await store.read("/queue/a", "m9") is None
            assert await store.read("/queue/none", "m1") is None
            none = await store.read_batch("/queue/none", None, 10)
            assert (none.messages, none.next) == ([], None)
            assert store.position("/queue/a", "m9") is None
            assert store.position("/queue/none", "m1") is None
            with pytest.raises(ValueError):
                await store.read_batch("/queue/a", None, 0)

    async def test_removed_and_dropped_messages_are_gone(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            topic = message("t1", destination="/topic/t")
            await store.write([PutSubscription(SUB), AddMessage(SUB.key, topic)])
            await store.write([AddMessage("/queue/a", message(f"m{i}")) for i in range(5)])
            await store.write([RemoveMessage("/queue/a", "m1"), RemoveMessage("/queue/a", "m3")])
            assert await store.read("/queue/a", "m1") is None
            assert store.position("/queue/a", "m3") is None
            assert [m.message_id for m in await read_all(store, "/queue/a", 10)] == ["m0", "m2", "m4"]
            await store.write([DropSubscription(SUB.key)])
            assert await store.read(SUB.key, "t1") is None
            assert (await store.read_batch(SUB.key, None, 10)).messages == []

    async def test_batches_keep_store_order_and_limit(self, data_dir: Path) -> None:
        queues = ["/queue/a", SUB.key]
        sent = [message(f"m{i}", destination=queues[i % 2]) for i in range(20)]
        async with opened(self.kind, data_dir) as (store, _):
            await store.write([PutSubscription(SUB)])
            for i, m in enumerate(sent):
                await store.enqueue(queues[i % 2], m)
            first = await store.read_batch("/queue/a", None, 4)
            assert first.messages == sent[0:8:2]
            second = await store.read_batch("/queue/a", first.next, 4)
            assert second.messages == sent[8:16:2]
            for limit in (1, 3, 10, 11):
                assert await read_all(store, "/queue/a", limit) == sent[0::2]
                assert await read_all(store, SUB.key, limit) == sent[1::2]
            positions = [store.position("/queue/a", m.message_id) for m in sent[0::2]]
            known = [p for p in positions if p is not None]
            assert len(known) == len(positions) and known == sorted(set(known))

    async def test_resume_after_a_consumed_message_or_from_a_position(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            await store.write([AddMessage("/queue/a", message(f"m{i}")) for i in range(10)])
            page = await store.read_batch("/queue/a", None, 3)
            # The reader's last message is consumed before it asks for more: its position still holds.
            await store.write([RemoveMessage("/queue/a", f"m{i}") for i in range(3)])
            await store.enqueue("/queue/a", message("m10"))
            rest = await store.read_batch("/queue/a", page.next, 100)
            assert [m.message_id for m in rest.messages] == [f"m{i}" for i in range(3, 11)]
            after_m5 = store.position("/queue/a", "m5")
            middle = await store.read_batch("/queue/a", after_m5, 2)
            assert [m.message_id for m in middle.messages] == ["m6", "m7"]
            assert middle.next == store.position("/queue/a", "m7")
            # Emptied, then refilled: the position read last still resumes at the new message.
            await store.write([RemoveMessage("/queue/a", f"m{i}") for i in range(3, 11)])
            await store.enqueue("/queue/a", message("m11"))
            again = await store.read_batch("/queue/a", rest.next, 5)
            assert [m.message_id for m in again.messages] == ["m11"]

    async def test_a_batch_spans_several_files(self, data_dir: Path) -> None:
        sent = [numbered(n, 1500) for n in range(150)]
        async with opened(self.kind, data_dir, **SMALL) as (store, _):
            for m in sent:
                await store.enqueue("/queue/a", m)
            if self.kind in FILE_STORE_KINDS:
                assert (await store.stats()).files >= 3
            assert (await store.read_batch("/queue/a", None, 1000)).messages == sent
            assert await read_all(store, "/queue/a", 40) == sent
            assert await store.read("/queue/a", "m0") == sent[0]
            assert await store.read("/queue/a", "m149") == sent[149]

    async def test_reads_after_reopen(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir, **SMALL) as (store, _):
            await store.write([PutSubscription(SUB)])
            for n in range(120):
                await store.enqueue("/queue/a" if n % 3 else SUB.key, numbered(n))
            await store.write([RemoveMessage("/queue/a", f"m{n}") for n in range(1, 120, 6)])
        async with opened(self.kind, data_dir, **SMALL) as (store, recovered):
            for queue in ("/queue/a", SUB.key):
                assert await read_all(store, queue, 7) == recovered.queues[queue]
                for m in recovered.queues[queue][::9]:
                    assert await store.read(queue, m.message_id) == m
            assert await store.read("/queue/a", "m1") is None

    async def test_reads_after_compaction_moved_messages(self, data_dir: Path) -> None:
        keep = {3, 4, 150, 297}
        survivors = [numbered(n) for n in sorted(keep)]
        async with opened(self.kind, data_dir, **SMALL) as (store, _):
            await store.write([PutSubscription(SUB), AddMessage(SUB.key, numbered(1000))])
            for start in range(0, 300, 10):
                await store.write([AddMessage("/queue/a", numbered(n)) for n in range(start, start + 10)])
                await store.write(
                    [RemoveMessage("/queue/a", f"m{n}") for n in range(start, start + 10) if n not in keep]
                )
            page = await store.read_batch("/queue/a", None, 1)
            await compact(store)
            if self.kind in FILE_STORE_KINDS:
                assert not (data_dir / self.kind / FIRST_FILE[self.kind]).exists(), "nothing was moved"
            assert await read_all(store, "/queue/a", 3) == survivors
            assert (await store.read_batch("/queue/a", page.next, 10)).messages == survivors[1:]
            for m in survivors:
                assert await store.read("/queue/a", m.message_id) == m
            assert await store.read(SUB.key, "m1000") == numbered(1000)
            await store.enqueue("/queue/a", numbered(300))
            assert await read_all(store, "/queue/a", 10) == survivors + [numbered(300)]
        async with opened(self.kind, data_dir, **SMALL) as (store, recovered):
            assert await read_all(store, "/queue/a", 2) == survivors + [numbered(300)]
            assert await read_all(store, SUB.key, 2) == recovered.queues[SUB.key] == [numbered(1000)]

    async def test_reads_run_beside_writes_and_compaction(self, data_dir: Path) -> None:
        """Reads in worker threads while the writer thread adds, removes and compacts: no read fails
        because compaction moved a message and deleted its old file under it."""
        async with opened(self.kind, data_dir, **SMALL) as (store, _):
            done = asyncio.Event()
            async with asyncio.timeout(60):
                _, *rounds = await asyncio.gather(
                    churn(store, done), keep_reading(store, done), keep_reading(store, done)
                )
            assert min(rounds) >= 1
            assert await read_all(store, "/queue/a", 5) == PINNED
            if self.kind in FILE_STORE_KINDS:  # compaction did delete files while they read
                assert not (data_dir / self.kind / FIRST_FILE[self.kind]).exists()

    async def test_close_waits_for_reads_in_flight_and_refuses_later_ones(self, data_dir: Path) -> None:
        sent = [numbered(n) for n in range(200)]
        async with opened(self.kind, data_dir) as (store, _):
            await store.write([AddMessage("/queue/a", m) for m in sent])
            reading = [asyncio.ensure_future(store.read_batch("/queue/a", None, 1000)) for _ in range(8)]
            await asyncio.sleep(0)  # every read has begun: its thread is queued or running
        # close() has returned, and released what the reads use only after they were done with it.
        assert [page.messages for page in await asyncio.gather(*reading)] == [sent] * 8
        with pytest.raises(StoreClosed):
            await store.read("/queue/a", "m1")
        with pytest.raises(StoreClosed):
            await store.read_batch("/queue/a", None, 1)
        with pytest.raises(StoreClosed):
            store.position("/queue/a", "m1")
