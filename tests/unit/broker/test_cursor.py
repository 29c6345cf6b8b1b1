"""The store cursor (broker/engine/cursor.py) over a real journal store in tmp_path: a small window,
backlogs far larger than it, drained in store order with nothing lost or duplicated."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broker.engine.core import Broker
from config.model import BrokerConfig, Limits, StoreSettings
from stores.base import Recovered
from stores.journal.store import JournalStore
from tests.unit.broker.memconn import Client
from transports.stomp.frame import Frame

WINDOW = 4096


def settings(window: int = WINDOW) -> StoreSettings:
    return StoreSettings(type="journal", sync="never", cursor_window=window, duplicate_window=100)


async def open_broker(path: Path, window: int = WINDOW, **limits: int) -> tuple[Broker, JournalStore]:
    store = JournalStore(path, settings(window))
    recovered = await store.open()
    config = BrokerConfig(name="unit", connectors=["tcp://127.0.0.1:1"], limits=Limits(**limits),
                          store=settings(window))
    broker = Broker(config, store)
    await broker.start(recovered)
    return broker, store


async def reopen(path: Path) -> Recovered:
    store = JournalStore(path, settings())
    try:
        return await store.open()
    finally:
        await store.close()


async def shutdown(broker: Broker, store: JournalStore) -> None:
    await broker.stop()
    await store.close()


async def connected(broker: Broker, **headers: str) -> Client:
    client = Client(broker)
    await client.connect("1.2", **headers)
    return client


async def produce(client: Client, destination: str, bodies: list[bytes], **headers: str) -> None:
    for body in bodies:
        await client.raw("SEND", {"destination": destination, "persistent": "true", **headers}, body)
    await client.settle()


async def collect(client: Client, count: int, timeout: float = 20.0) -> list[bytes]:
    """Bodies of the next `count` MESSAGE frames, waiting for the cursor to page them in."""
    return [frame.body for frame in await delivered(client, count, timeout)]


async def delivered(client: Client, count: int, timeout: float = 20.0) -> list[Frame]:
    """The next `count` MESSAGE frames (bounded wait), headers and all."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frames.extend(client.messages())
        if len(frames) < count:
            await asyncio.sleep(0.005)
    return frames


def numbered(n: int, start: int = 0, size: int = 100) -> list[bytes]:
    return [f"{i:08d}".encode().ljust(size, b".") for i in range(start, start + n)]


async def test_backlog_pages_and_drains_in_fifo_order(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    bodies = numbered(20_000)
    await produce(producer, "/queue/b", bodies)
    queue = broker.destinations.queues["/queue/b"]
    assert queue.depth == 20_000
    assert queue.paged > 19_000  # only a window (4 KiB: some 13 messages of ~300 bytes) in memory
    assert queue.bytes <= 2 * WINDOW
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/b", id="s")
    got = await collect(consumer, 20_000)
    assert got == bodies
    assert queue.depth == 0 and queue.paged == 0
    assert queue.cursor is not None and queue.cursor.reads > 10
    await asyncio.sleep(0.05)
    await shutdown(broker, store)
    assert (await reopen(tmp_path)).depth("/queue/b") == 0


async def test_concurrent_producers_and_consumer_no_gap_no_duplicate(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/c", id="s", ack="client-individual",
                         activemq_prefetchSize="50")
    producers = [await connected(broker) for _ in range(4)]
    per = 1500

    async def run(k: int, client: Client) -> None:
        for i in range(per):
            await client.raw("SEND", {"destination": "/queue/c", "persistent": "true"},
                             f"{k}:{i:06d}".encode().ljust(200, b"."))
            if i % 100 == 0:
                await asyncio.sleep(0)
        await client.settle()

    got: list[bytes] = []

    async def consume() -> None:
        while len(got) < 4 * per:
            for frame in consumer.messages():
                got.append(frame.body)
                await consumer.frame("ACK", id=frame.headers["ack"])
            await asyncio.sleep(0.001)

    reader = asyncio.ensure_future(consume())
    await asyncio.gather(*(run(k, c) for k, c in enumerate(producers)))
    await asyncio.wait_for(reader, 30)
    assert len(got) == len(set(got)) == 4 * per
    for k in range(4):  # per producer, in the order it sent
        mine = [body for body in got if body.startswith(f"{k}:".encode())]
        assert mine == sorted(mine)
    queue = broker.destinations.queues["/queue/c"]
    assert queue.depth == 0 and queue.cursor is not None and queue.cursor.reads > 0
    await asyncio.sleep(0.05)
    await shutdown(broker, store)
    assert (await reopen(tmp_path)).depth("/queue/c") == 0


async def test_priorities_apply_within_the_window(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path, window=64 * 1024)
    producer = await connected(broker)
    for i in range(300):
        await producer.raw("SEND", {"destination": "/queue/p", "persistent": "true",
                                    "priority": str(9 if i % 2 else 1)}, f"{i:04d}".encode().ljust(500))
    await producer.settle()
    queue = broker.destinations.queues["/queue/p"]
    assert queue.paged > 0
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/p", id="s")
    frames = await collect(consumer, 300)
    assert sorted(frames) == sorted(f"{i:04d}".encode().ljust(500) for i in range(300))
    first = [int(b[:4]) for b in frames[:40]]
    assert all(n % 2 for n in first)  # the high-priority messages of the window go first
    await shutdown(broker, store)


async def test_selector_reads_past_a_window_it_does_not_match(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    for _ in range(100):
        await producer.raw("SEND", {"destination": "/queue/s", "persistent": "true", "kind": "other"},
                           b"x" * 100)
    for i in range(5):
        await producer.raw("SEND", {"destination": "/queue/s", "persistent": "true", "kind": "mine"},
                           f"m{i}".encode())
    await producer.settle()
    queue = broker.destinations.queues["/queue/s"]
    first_bytes = queue.bytes
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/s", id="s", selector="kind = 'mine'")
    await asyncio.sleep(0.3)
    # The window is full of "other": the cursor reads on past it up to twice its size; here the
    # matching ones are further back than that, so they wait (docs/paging.md "Limits").
    assert queue.bytes <= 2 * WINDOW + 1024 and queue.bytes > first_bytes
    assert consumer.bodies() == []
    other = await connected(broker)
    await other.frame("SUBSCRIBE", destination="/queue/s", id="o", selector="kind = 'other'")
    assert len(await collect(other, 100)) == 100
    assert await collect(consumer, 5) == [f"m{i}".encode() for i in range(5)]
    await shutdown(broker, store)


async def test_selector_finds_matching_messages_within_twice_the_window(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    for _ in range(20):
        await producer.raw("SEND", {"destination": "/queue/t", "persistent": "true", "kind": "other"},
                           b"x" * 100)
    for i in range(3):
        await producer.raw("SEND", {"destination": "/queue/t", "persistent": "true", "kind": "mine"},
                           f"m{i}".encode())
    await producer.settle()
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/t", id="s", selector="kind = 'mine'")
    assert await collect(consumer, 3, timeout=5) == [b"m0", b"m1", b"m2"]
    await shutdown(broker, store)


async def test_nack_redelivery_and_dead_letter_of_paged_messages(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path, max_redeliveries=1)
    producer = await connected(broker)
    bodies = numbered(200)
    await produce(producer, "/queue/n", bodies)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/n", id="s", ack="client-individual",
                         activemq_prefetchSize="1")
    seen: dict[bytes, list[str]] = {}
    deadline = time.monotonic() + 20
    acked = 0
    while acked < 200 and time.monotonic() < deadline:
        for frame in consumer.messages():
            flags = seen.setdefault(frame.body, [])
            flags.append(frame.headers.get("redelivered", "false"))
            n = int(frame.body[:8])
            if n % 10 == 0 or (n % 10 == 1 and len(flags) == 1):
                await consumer.frame("NACK", id=frame.headers["ack"])
                if n % 10 == 0 and len(flags) == 2:
                    acked += 1  # on to the DLQ
            else:
                await consumer.frame("ACK", id=frame.headers["ack"])
                acked += 1
        await asyncio.sleep(0.002)
    assert acked == 200
    assert all(flags[0] == "false" for flags in seen.values())  # stored during this open: first delivery
    assert all(flags[1:] == ["true"] for body, flags in seen.items() if int(body[:8]) % 10 in (0, 1))
    dlq = broker.destinations.queues["ActiveMQ.DLQ" if "ActiveMQ.DLQ" in broker.destinations.queues
                                      else next(n for n in broker.destinations.queues if "DLQ" in n)]
    assert dlq.depth == 20
    await asyncio.sleep(0.05)
    await shutdown(broker, store)
    recovered = await reopen(tmp_path)
    assert recovered.depth("/queue/n") == 0 and recovered.depth(dlq.name) == 20


async def test_expired_paged_messages_are_dropped_on_page_in(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    soon = str(int(time.time() * 1000) + 300)
    for i in range(100):
        headers = {"destination": "/queue/e", "persistent": "true"}
        if i >= 50:
            headers["expires"] = soon
        await producer.raw("SEND", headers, f"{i:04d}".encode().ljust(200))
    await producer.settle()
    queue = broker.destinations.queues["/queue/e"]
    assert queue.paged > 40
    await asyncio.sleep(0.4)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/e", id="s")
    got = await collect(consumer, 50)
    await asyncio.sleep(0.2)
    assert [int(b[:4]) for b in got + consumer.bodies()] == list(range(50))
    assert queue.expired == 50 and queue.depth == 0
    await asyncio.sleep(0.05)
    await shutdown(broker, store)
    assert (await reopen(tmp_path)).depth("/queue/e") == 0


async def test_durable_topic_subscription_pages(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    sub = await connected(broker, client_id="c")
    await sub.raw("SUBSCRIBE", {"destination": "/topic/t", "id": "1", "activemq.subscriptionName": "n",
                                "receipt": "r"})
    await sub.settle()
    await sub.frame("DISCONNECT")
    producer = await connected(broker)
    bodies = numbered(2000)
    await produce(producer, "/topic/t", bodies)
    queue = broker.destinations.durables["durable:c:n"].queue
    assert queue.depth == 2000 and queue.paged > 1900
    assert broker.stats()["destinations"]["/topic/t"]["paged"] == queue.paged
    back = await connected(broker, client_id="c")
    await back.raw("SUBSCRIBE", {"destination": "/topic/t", "id": "1", "activemq.subscriptionName": "n"})
    assert await collect(back, 2000) == bodies
    await shutdown(broker, store)


async def test_memory_stays_bounded_while_a_large_backlog_queues(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path, window=64 * 1024)
    producer = await connected(broker)
    peak = 0
    for i in range(50_000):
        await producer.raw("SEND", {"destination": "/queue/m", "persistent": "true"}, b"%08d" % i)
        if i % 1000 == 999:
            peak = max(peak, broker.destinations.queues["/queue/m"].memory.used)
    await producer.settle()
    queue = broker.destinations.queues["/queue/m"]
    share = queue.memory
    assert queue.depth == 50_000 and queue.paged > 49_000
    assert max(peak, share.used) <= 64 * 1024 + 1024
    assert broker.memory.used < 1024 * 1024  # the budget holds a window, not the backlog
    await shutdown(broker, store)


async def test_recovery_pages_the_tail_and_flags_it_redelivered(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    old = numbered(1000)
    await produce(producer, "/queue/r", old)
    await shutdown(broker, store)

    store = JournalStore(tmp_path, settings())
    recovered = await store.open()
    # The store recovers the index only: a head of the queue (its window) and the total.
    head = len(recovered.queues["/queue/r"])
    assert recovered.depth("/queue/r") == 1000 and 0 < head < 1000
    config = BrokerConfig(name="unit", connectors=["tcp://127.0.0.1:1"], store=settings())
    broker = Broker(config, store)
    await broker.start(recovered)
    queue = broker.destinations.queues["/queue/r"]
    assert queue.depth == 1000 and queue.paged == 1000 - head
    producer = await connected(broker)
    new = numbered(100, start=1000)
    await produce(producer, "/queue/r", new)
    assert queue.depth == 1100
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/r", id="s")
    frames: list = []
    deadline = time.monotonic() + 20
    while len(frames) < 1100 and time.monotonic() < deadline:
        frames.extend(consumer.messages())
        await asyncio.sleep(0.005)
    assert [f.body for f in frames] == old + new
    assert all(f.headers.get("redelivered") == "true" for f in frames[:1000])
    assert not any(f.headers.get("redelivered") == "true" for f in frames[1000:])
    await asyncio.sleep(0.05)
    await shutdown(broker, store)
    assert (await reopen(tmp_path)).depth("/queue/r") == 0


async def test_a_store_failure_stops_the_reader_without_spinning(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    await produce(producer, "/queue/f", numbered(200))
    queue = broker.destinations.queues["/queue/f"]
    assert queue.cursor is not None and queue.paged > 0
    await store.close()  # reads now raise StoreClosed
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/f", id="s")
    await asyncio.sleep(0.2)
    assert queue.cursor.stopped and queue.cursor.reads == 0
    assert 0 < len(consumer.bodies()) < 200  # the window only
    await broker.stop()


async def test_messages_removed_behind_the_cursor_do_not_make_it_spin(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    await produce(producer, "/queue/g", numbered(100))
    queue = broker.destinations.queues["/queue/g"]
    assert queue.cursor is not None
    paged = queue.paged
    queue.cursor.counted(50)  # fifty more than the store holds (as if removed meanwhile)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/g", id="s")
    assert len(await collect(consumer, 100)) == 100
    await asyncio.sleep(0.1)
    assert queue.paged == 0 and queue.depth == 0
    assert queue.cursor.reads <= paged  # a short page forgot the fifty: no read loop
    await shutdown(broker, store)


async def test_hot_standby_counts_beyond_the_window_and_the_adopted_broker_reads_on(tmp_path: Path) -> None:
    from broker.ha.standby import Standby
    from stores.base import AddMessage, RemoveMessage, StoredMessage
    from tests.unit.stores.test_journal_follower import EpochFence, follow

    config = BrokerConfig(name="s", data_dir=tmp_path, store=settings())
    directory = tmp_path / "journal"
    store = JournalStore(directory, settings(), EpochFence(1))
    await store.open()
    standby = Standby.for_config(config)
    assert standby is not None and standby.follower is not None
    follow(standby.follower)

    def stored(n: int) -> StoredMessage:
        return StoredMessage(f"old-{n}", "/queue/h", {"n": str(n)}, b"%06d" % n + b"." * 300)

    await store.write([AddMessage("/queue/h", stored(n)) for n in range(500)])
    await store.write([RemoveMessage("/queue/h", "old-0"), RemoveMessage("/queue/h", "old-400")])
    follow(standby.follower)
    assert standby.broker is not None and standby.replay is not None
    queue = standby.broker.destinations.queues["/queue/h"]
    assert queue.depth == 498 and queue.paged > 480  # the head in memory, the rest only counted
    assert sum(len(e) for e in standby.replay.messages.values()) < 20
    await store.close()

    master = JournalStore(directory, settings(), EpochFence(2))
    assert await standby.hand_over(master)
    recovered = await master.open()
    warm = standby.adopt(master, recovered)
    assert warm is not None
    await warm.start()
    consumer = await connected(warm)
    await consumer.frame("SUBSCRIBE", destination="/queue/h", id="s")
    frames: list = []
    deadline = time.monotonic() + 20
    while len(frames) < 498 and time.monotonic() < deadline:
        frames.extend(consumer.messages())
        await asyncio.sleep(0.005)
    assert [int(f.body[:6]) for f in frames] == [n for n in range(1, 500) if n != 400]
    assert all(f.headers.get("redelivered") == "true" for f in frames)
    await warm.stop()
    await standby.close()
    await master.close()


async def test_admin_browse_remove_move_and_purge_see_paged_messages(tmp_path: Path) -> None:
    from broker.engine import admin

    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    bodies = numbered(300)
    await produce(producer, "/queue/a", bodies)
    queue = admin.queue_of(broker, "/queue/a")
    assert queue.paged > 280
    rows = {row.name: row for row in admin.destinations(broker)}
    assert rows["/queue/a"].depth == 300 and rows["/queue/a"].paged == queue.paged
    assert [m.body for m in await admin.browse(queue, 0, 1000)] == bodies
    assert [m.body for m in await admin.browse(queue, 250, 10)] == bodies[250:260]
    browsed = await admin.browse(queue, 200, 1)
    assert browsed[0].redelivered is False  # stored during this open, never delivered

    await admin.remove(broker, queue, browsed[0].message_id)  # a paged one, by id
    assert queue.depth == 299
    moved = await admin.move(broker, queue, "/queue/b", limit=100)
    assert moved.moved == 100 and queue.depth == 199
    target = admin.queue_of(broker, "/queue/b")
    assert target.depth == 100 and target.paged > 0  # the target pages too
    copied = await admin.move(broker, queue, "/queue/c", limit=150, copy=True)
    assert copied.moved == 150 and queue.depth == 199
    assert [m.body for m in await admin.browse(target, 0, 1000)] == bodies[:100]
    assert await admin.purge(broker, queue) == 199
    assert queue.depth == 0 and queue.paged == 0
    assert await admin.delete(broker, "/queue/c") == 150

    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/b", id="s")
    assert await collect(consumer, 100) == bodies[:100]
    await asyncio.sleep(0.05)
    await shutdown(broker, store)
    recovered = await reopen(tmp_path)
    assert recovered.depth("/queue/a") == 0 and recovered.depth("/queue/b") == 0
    assert recovered.depth("/queue/c") == 0


async def test_a_stomp_browser_sees_the_paged_messages_too(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    bodies = numbered(1500)
    await produce(producer, "/queue/v", bodies)
    browser = await connected(broker)
    await browser.frame("SUBSCRIBE", destination="/queue/v", id="x", browser="true")
    frames: list = []
    deadline = time.monotonic() + 20
    while not (frames and frames[-1].headers.get("browser") == "end") and time.monotonic() < deadline:
        frames.extend(browser.messages())
        await asyncio.sleep(0.005)
    assert [f.body for f in frames[:-1]] == bodies
    assert broker.destinations.queues["/queue/v"].depth == 1500  # none taken out
    await shutdown(broker, store)


@pytest.mark.parametrize("kind", ["leveldb", "appendlog"])
async def test_every_store_serves_a_paged_backlog_in_order(tmp_path: Path, kind: str) -> None:
    from stores.registry import store_class

    store_settings = StoreSettings(type=kind, sync="never", cursor_window=WINDOW, duplicate_window=100)
    store = store_class(kind)(tmp_path / kind, store_settings)
    config = BrokerConfig(name="unit", connectors=["tcp://127.0.0.1:1"], store=store_settings)
    broker = Broker(config, store)
    await broker.start(await store.open())
    producer = await connected(broker)
    bodies = numbered(3000)
    await produce(producer, "/queue/k", bodies[:2000])
    queue = broker.destinations.queues["/queue/k"]
    assert queue.paged > 1900
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/k", id="s", ack="client-individual")
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    sent = 2000
    while len(got) < 3000 and time.monotonic() < deadline:
        for frame in consumer.messages():
            got.append(frame.body)
            await consumer.frame("ACK", id=frame.headers["ack"])
        if sent < 3000:  # more arrive while the backlog drains
            await producer.raw("SEND", {"destination": "/queue/k", "persistent": "true"}, bodies[sent])
            sent += 1
        await asyncio.sleep(0)
    assert got == bodies
    await asyncio.sleep(0.05)
    await broker.stop()
    await store.close()


async def test_a_committed_transaction_pages_in_send_order(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    bodies = numbered(400)
    await produce(producer, "/queue/x", bodies[:50])
    await producer.frame("BEGIN", transaction="t")
    for body in bodies[50:]:
        headers = {"destination": "/queue/x", "persistent": "true", "transaction": "t"}
        await producer.raw("SEND", headers, body)
    await producer.raw("COMMIT", {"transaction": "t", "receipt": "c"})
    await producer.settle()
    queue = broker.destinations.queues["/queue/x"]
    assert queue.depth == 400 and queue.paged > 350
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/x", id="s")
    assert await collect(consumer, 400) == bodies
    await shutdown(broker, store)


async def test_dropping_a_paging_durable_subscription_forgets_its_paged_messages(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    sub = await connected(broker, client_id="c")
    headers = {"destination": "/topic/d", "id": "1", "activemq.subscriptionName": "n"}
    await sub.raw("SUBSCRIBE", {**headers, "receipt": "r"})
    await sub.settle()
    await sub.frame("DISCONNECT")
    producer = await connected(broker)
    await produce(producer, "/topic/d", numbered(500))
    queue = broker.destinations.durables["durable:c:n"].queue
    assert queue.paged > 450
    back = await connected(broker, client_id="c")
    await back.raw("SUBSCRIBE", {**headers, "activemq.prefetchSize": "1", "ack": "client"})
    await back.raw("UNSUBSCRIBE", {"id": "1", "activemq.subscriptionName": "n", "receipt": "u"})
    await back.settle()
    await asyncio.sleep(0.1)
    assert queue.depth == 0 and queue.paged == 0 and queue.memory.used == 0
    assert "durable:c:n" not in broker.destinations.durables
    await shutdown(broker, store)
    recovered = await reopen(tmp_path)
    assert recovered.depth("durable:c:n") == 0 and recovered.subscriptions == []
