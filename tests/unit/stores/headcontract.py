"""The recovery part of the store contract (stores/base.py, "Recovery"): heads and depths.

`HeadContract` runs beside `StoreContract` in test_contract.py, once per store. With the smallest
`cursor_window` (1 KiB) a few messages fill a queue's head; what the store did not hand over must
then be exactly what `read_batch` gives after the position of the last head message.
"""

from __future__ import annotations

from pathlib import Path

from stores.base import (
    AddMessage,
    DropSubscription,
    PutSubscription,
    Recovered,
    Store,
    StoredMessage,
    stored_bytes,
)
from tests.unit.stores.contract import SUB, message, opened
from tests.unit.stores.readcontract import SMALL, read_all

WINDOW = 1024
BODY = 300  # with its one 14-byte header: 314 bytes, so three fit in the window and four do not


def body(n: int, size: int = BODY) -> bytes:
    return bytes([n % 251]) * size


def sent(queue: str, first: int, count: int, size: int = BODY) -> list[StoredMessage]:
    return [message(f"{queue[-1]}{n}", queue, body(n, size)) for n in range(first, first + count)]


async def check_heads(store: Store, recovered: Recovered, expected: dict[str, list[StoredMessage]]) -> None:
    """Each head is the prefix that fits the window (at least one message), each depth exact, and
    reading on after the head gives the rest, in order."""
    assert set(recovered.queues) == set(expected) == set(recovered.depths)
    for queue, messages in expected.items():
        head = recovered.queues[queue]
        assert recovered.depth(queue) == len(messages)
        fits, used = 0, 0
        for m in messages:
            used += stored_bytes(m)
            if fits and used > WINDOW:
                break
            fits += 1
        assert head == messages[:fits]
        after = store.position(queue, head[-1].message_id)
        assert after is not None
        rest: list[StoredMessage] = []
        while (page := await store.read_batch(queue, after, 2)).messages:
            rest.extend(page.messages)
            after = page.next
        assert head + rest == messages


class HeadContract:
    kind: str

    async def test_heads_fit_the_window_depths_are_exact_and_reads_continue(self, data_dir: Path) -> None:
        a, b, c = sent("/queue/a", 0, 20), sent("/queue/b", 0, 1, 5000), sent("/queue/c", 0, 3)
        async with opened(self.kind, data_dir, cursor_window=WINDOW, **SMALL) as (store, recovered):
            assert recovered.queues == {} and recovered.depths == {}
            for i in range(20):
                await store.enqueue("/queue/a", a[i])
                if i < len(c):
                    await store.enqueue("/queue/c", c[i])
            await store.enqueue("/queue/b", b[0])
        async with opened(self.kind, data_dir, cursor_window=WINDOW, **SMALL) as (store, recovered):
            assert [len(recovered.queues[q]) for q in ("/queue/a", "/queue/b", "/queue/c")] == [3, 1, 3]
            await check_heads(store, recovered, {"/queue/a": a, "/queue/b": b, "/queue/c": c})
            assert await read_all(store, "/queue/a", 7) == a  # the head is read again from the start too

    async def test_removals_before_and_inside_the_head_across_reopens(self, data_dir: Path) -> None:
        a = sent("/queue/a", 0, 30)
        async with opened(self.kind, data_dir, cursor_window=WINDOW, **SMALL) as (store, _):
            await store.write([AddMessage("/queue/a", m) for m in a])  # one record: many messages
            for n in (0, 1, 4, 10, 11, 12):
                await store.remove("/queue/a", a[n].message_id)
        left = [m for i, m in enumerate(a) if i not in (0, 1, 4, 10, 11, 12)]
        async with opened(self.kind, data_dir, cursor_window=WINDOW, **SMALL) as (store, recovered):
            await check_heads(store, recovered, {"/queue/a": left})
            for m in recovered.queues["/queue/a"]:  # the head is consumed: the next open starts after it
                await store.remove("/queue/a", m.message_id)
            more = sent("/queue/a", 100, 2)
            for m in more:
                await store.enqueue("/queue/a", m)
        async with opened(self.kind, data_dir, cursor_window=WINDOW, **SMALL) as (store, recovered):
            await check_heads(store, recovered, {"/queue/a": left[3:] + more})
        async with opened(self.kind, data_dir, cursor_window=64 * WINDOW, **SMALL) as (store, recovered):
            assert recovered.queues["/queue/a"] == left[3:] + more  # a larger window: all of it
            await check_heads_wide(store, recovered, left[3:] + more)

    async def test_a_dropped_subscription_leaves_no_head_and_no_depth(self, data_dir: Path) -> None:
        kept = sent("/queue/k", 0, 8)
        async with opened(self.kind, data_dir, cursor_window=WINDOW, **SMALL) as (store, _):
            await store.write([PutSubscription(SUB)])
            for m in sent(SUB.key, 0, 12):
                await store.enqueue(SUB.key, m)
            for m in kept:
                await store.enqueue("/queue/k", m)
            await store.write([DropSubscription(SUB.key)])
        async with opened(self.kind, data_dir, cursor_window=WINDOW, **SMALL) as (store, recovered):
            assert SUB.key not in recovered.queues and SUB.key not in recovered.depths
            await check_heads(store, recovered, {"/queue/k": kept})
            await store.write([PutSubscription(SUB)])  # again, with two new messages
            again = sent(SUB.key, 50, 2)
            for m in again:
                await store.enqueue(SUB.key, m)
        async with opened(self.kind, data_dir, cursor_window=WINDOW, **SMALL) as (store, recovered):
            await check_heads(store, recovered, {"/queue/k": kept, SUB.key: again})
            assert recovered.subscriptions == [SUB]


async def check_heads_wide(store: Store, recovered: Recovered, messages: list[StoredMessage]) -> None:
    assert recovered.depth("/queue/a") == len(messages)
    after = store.position("/queue/a", messages[-1].message_id)
    assert (await store.read_batch("/queue/a", after, 5)).messages == []

