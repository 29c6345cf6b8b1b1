"""Spilling non-persistent messages (broker/engine/spill.py) with a real temporary store in tmp_path:
backlogs far beyond a small window come back in order, selectors, priorities and expiry behave as
for paged persistent messages, purge drops them, and at limits.temp_usage producers are refused."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from broker.engine import admin
from broker.engine.admin import AdminError
from broker.engine.core import Broker
from broker.engine.spill import TempSpace
from config.model import BrokerConfig, Limits
from config.policy import DestinationPolicy
from stores.base import DurableSubscription
from stores.temp.files import TempStore
from tests.unit.broker.memconn import Client
from tests.unit.broker.test_cursor import (
    collect,
    connected,
    delivered,
    numbered,
    open_broker,
    settings,
    shutdown,
)

WINDOW = 4096
MiB = 1024 * 1024


async def spilling(path: Path, broker: Broker | None = None, limit: int = 64 * MiB,
                   **limits: float) -> Broker:
    """A broker (by default without a persistent store) whose /queue/ destinations spill to `path`."""
    if broker is None:
        config = BrokerConfig(name="unit", connectors=["tcp://127.0.0.1:1"], store=settings(WINDOW),
                              limits=Limits(non_persistent="spill", **limits))
        broker = Broker(config)
    store = TempStore(path / "tmp", segment_size=64 * 1024)
    await store.open()
    broker.temp = TempSpace(store, limit)
    await broker.start()
    return broker


async def send(client: Client, destination: str, bodies: list[bytes], **headers: str) -> None:
    for body in bodies:
        await client.raw("SEND", {"destination": destination, **headers}, body)
    await client.settle()


async def stopped(broker: Broker) -> None:
    """Stop the broker, then the temporary store `spilling` gave it."""
    await broker.stop()
    assert broker.temp is not None
    await broker.temp.store.close()


def files(path: Path) -> list[str]:
    return sorted(os.listdir(path / "tmp"))


async def made(path: Path, more_than: int) -> list[str]:
    """The segment files once the writes queued in the store's thread have made them (bounded)."""
    for _ in range(500):
        if len(files(path)) > more_than:
            break
        await asyncio.sleep(0.01)
    return files(path)


async def gone(path: Path) -> list[str]:
    """The segment files left once the deletions queued in the store's thread have run."""
    for _ in range(100):
        if not files(path):
            break
        await asyncio.sleep(0.01)
    return files(path)


async def test_a_backlog_spills_past_the_window_and_drains_in_order(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    bodies = numbered(5000)
    await send(producer, "/queue/n", bodies)
    queue = broker.destinations.queues["/queue/n"]
    assert queue.depth == 5000 and queue.spilled > 4900
    assert queue.bytes <= 2 * WINDOW
    assert broker.temp is not None and broker.temp.usage.used == broker.temp.store.bytes > 4900 * 100
    assert len(await made(tmp_path, 3)) > 3  # the thread may still be writing the last ones
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/n", id="s")
    assert await collect(consumer, 5000) == bodies
    assert queue.depth == 0 and queue.spilled == 0
    assert queue.spill is not None and queue.spill.reads > 5
    assert await gone(tmp_path) == [] and broker.temp.usage.used == 0
    await broker.stop()
    await broker.temp.store.close()


async def test_a_policys_cursor_window_is_the_window_its_queues_spill_beyond(tmp_path: Path) -> None:
    config = BrokerConfig(name="unit", connectors=["tcp://127.0.0.1:1"], store=settings(64 * WINDOW),
                          limits=Limits(non_persistent="spill"),
                          policy=[DestinationPolicy.model_validate({"queue": "SMALL",
                                                                    "cursor_window": 1024})])
    broker = await spilling(tmp_path, Broker(config))
    producer = await connected(broker)
    for name in ("/queue/SMALL", "/queue/BIG"):
        await send(producer, name, numbered(500))
    small, big = broker.destinations.queues["/queue/SMALL"], broker.destinations.queues["/queue/BIG"]
    assert small.spilled > 480 and big.spilled == 0  # 500 x ~200 B fit in the broker-wide window
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/SMALL", id="s")
    assert await collect(consumer, 500) == numbered(500)
    await stopped(broker)


async def test_a_selector_reads_on_past_a_window_it_does_not_match(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    # ~350 bytes each: 11 fill the window, the rest spill; the blue ones are within twice the window,
    # where a stalled read stops (cursor.STALL_FACTOR), as for paged persistent messages.
    await send(producer, "/queue/s", numbered(15), colour="red")
    await send(producer, "/queue/s", numbered(5, 100), colour="blue")
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/s", id="s", selector="colour = 'blue'")
    assert await collect(consumer, 5, timeout=5) == numbered(5, 100)
    queue = broker.destinations.queues["/queue/s"]
    assert queue.spill is not None and queue.spill.reads >= 1 and queue.depth == 15
    await stopped(broker)


async def test_priorities_order_what_is_in_memory_and_spilled_ones_keep_arrival_order(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    low = numbered(20, size=400)  # ~11 fill the 4 KiB window, the rest spill
    await send(producer, "/queue/p", low, priority="1")
    high = numbered(3, 100, size=400)
    await send(producer, "/queue/p", high, priority="9")  # spilled too: behind the spilled low ones
    queue = broker.destinations.queues["/queue/p"]
    in_memory = queue.depth - queue.spilled
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/p", id="s")
    got = await collect(consumer, 23)
    assert sorted(got) == sorted(low + high)
    assert got[:in_memory] == low[:in_memory]  # the window first, as with paged persistent messages
    assert [b for b in got if b in high] == high
    await stopped(broker)


async def test_a_spilled_message_that_expired_is_dropped_when_read_back(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    await send(producer, "/queue/e", numbered(15, size=400))
    expires = str(int(time.time() * 1000) + 200)
    await send(producer, "/queue/e", numbered(5, 100, size=400), expires=expires)
    queue = broker.destinations.queues["/queue/e"]
    assert queue.spilled >= 5
    await asyncio.sleep(0.3)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/e", id="s")
    got = await collect(consumer, 20, timeout=1.0)
    assert got == numbered(15, size=400)
    assert queue.expired == 5 and queue.depth == 0
    await stopped(broker)


async def test_an_admin_browse_shows_spilled_messages_after_those_in_memory(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    bodies = numbered(300)
    await send(producer, "/queue/b", bodies)
    queue = broker.destinations.queues["/queue/b"]
    in_memory = queue.depth - queue.spilled
    assert [m.body for m in await admin.browse(queue, 0, 300)] == bodies
    assert [m.body for m in await admin.browse(queue, in_memory + 10, 5)] == bodies[in_memory + 10:][:5]
    page = await admin.browse(queue, 250, 100)
    assert [m.body for m in page] == bodies[250:] and not any(m.persistent for m in page)
    assert queue.depth == 300  # nothing taken out
    await stopped(broker)


async def browsed(client: Client, timeout: float = 20) -> list:
    """The frames a browser subscription got, up to its browser:end (bounded)."""
    frames: list = []
    deadline = time.monotonic() + timeout
    while not (frames and frames[-1].headers.get("browser") == "end") and time.monotonic() < deadline:
        frames.extend(client.messages())
        await asyncio.sleep(0.005)
    return frames


async def test_a_stomp_browser_sees_spilled_messages_after_those_in_memory(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    bodies = numbered(1500)  # several pages of spilled ones (admin.PAGE)
    await send(producer, "/queue/v", bodies)
    queue = broker.destinations.queues["/queue/v"]
    assert queue.spilled > 1400
    browser = await connected(broker)
    await browser.frame("SUBSCRIBE", destination="/queue/v", id="x", browser="true")
    frames = await browsed(browser)
    assert [f.body for f in frames[:-1]] == bodies
    assert frames[-1].headers.get("browser") == "end" and frames[-1].body == b""
    assert not any(f.headers.get("redelivered") for f in frames)
    assert queue.depth == 1500 and queue.spilled > 1400  # none taken out
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/v", id="s")
    assert await collect(consumer, 1500) == bodies
    await stopped(broker)


async def test_remove_by_id_takes_one_spilled_message_from_the_middle(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    bodies = numbered(1200)
    await send(producer, "/queue/r", bodies)
    queue = broker.destinations.queues["/queue/r"]
    spilled = queue.spilled
    assert spilled > 1100
    victim = (await admin.browse(queue, 600, 1))[0]  # spilled, far from either end
    await admin.remove(broker, queue, victim.message_id)
    assert queue.depth == 1199 and queue.spilled == spilled - 1 and queue.dequeued == 1
    with pytest.raises(AdminError) as again:
        await admin.remove(broker, queue, victim.message_id)
    assert again.value.status == 404
    rest = [body for body in bodies if body != victim.body]
    assert [m.body for m in await admin.browse(queue, 595, 10)] == rest[595:605]  # positions skip it
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/r", id="s")
    assert await collect(consumer, 1199) == rest
    assert queue.depth == 0 and queue.spilled == 0
    assert broker.temp is not None and await gone(tmp_path) == [] and broker.temp.usage.used == 0
    await stopped(broker)


async def test_move_and_copy_take_spilled_messages_to_another_queue(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    bodies = numbered(1000)
    await send(producer, "/queue/a", bodies)
    source = broker.destinations.queues["/queue/a"]
    assert source.spilled > 900
    moved = await admin.move(broker, source, "/queue/b", limit=400)  # those in memory, then spilled ones
    assert moved.moved == 400 and moved.skipped == 0
    target = broker.destinations.queues["/queue/b"]
    assert target.depth == 400 and target.spilled > 300  # non-persistent: they spill there too
    assert source.depth == 600 and source.spilled > 500
    middle = set(bodies[700:703])  # spilled, far from either end
    picked = [m.message_id for m in await admin.browse(source, 0, 1000) if m.body in middle]
    assert len(picked) == 3
    by_id = await admin.move(broker, source, "/queue/b", ids=picked)
    assert by_id.moved == 3 and source.depth == 597 and target.depth == 403
    copied = await admin.move(broker, source, "/queue/c", limit=1000, copy=True)
    assert copied.moved == 597 and source.depth == 597
    assert source.dequeued == 403 and not any(m.persistent for m in await admin.browse(target, 0, 1000))
    left = bodies[400:700] + bodies[703:]
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/b", id="b")
    assert await collect(consumer, 403) == bodies[:400] + bodies[700:703]
    await consumer.frame("SUBSCRIBE", destination="/queue/c", id="c")
    assert await collect(consumer, 597) == left
    await consumer.frame("SUBSCRIBE", destination="/queue/a", id="a")
    assert await collect(consumer, 597) == left
    assert source.depth == target.depth == 0 and source.spilled == target.spilled == 0
    assert broker.temp is not None and await gone(tmp_path) == [] and broker.temp.usage.used == 0
    await stopped(broker)


async def test_purge_drops_spilled_messages_and_their_files(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    await send(producer, "/queue/g", numbered(2000))
    queue = broker.destinations.queues["/queue/g"]
    assert files(tmp_path)
    assert await admin.purge(broker, queue) == 2000
    assert queue.depth == 0 and queue.spilled == 0 and queue.dequeued == 2000
    assert await gone(tmp_path) == []
    await send(producer, "/queue/g", numbered(3))
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/g", id="s")
    assert await collect(consumer, 3) == numbered(3)
    await stopped(broker)


def temp_queue_name(broker: Broker) -> str:
    """The name of the broker's one temporary queue."""
    (name,) = [n for n in broker.destinations.queues if n.startswith("/remote-temp-queue/")]
    return name


async def send_alternately(producer: Client, persistent: list[bytes], transient: list[bytes]) -> None:
    """A persistent message to /queue/m, then a non-persistent one, and so on."""
    for p, t in zip(persistent, transient, strict=True):
        await producer.raw("SEND", {"destination": "/queue/m", "persistent": "true"}, p)
        await producer.raw("SEND", {"destination": "/queue/m"}, t)
    await producer.settle()


async def test_persistent_messages_page_and_non_persistent_spill_side_by_side(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path / "store", WINDOW, non_persistent="spill")  # type: ignore[arg-type]
    await spilling(tmp_path, broker)
    producer = await connected(broker)
    persistent, transient = numbered(1000), numbered(1000, 5000)
    await send_alternately(producer, persistent, transient)
    queue = broker.destinations.queues["/queue/m"]
    assert queue.depth == 2000 and queue.paged > 900 and queue.spilled > 900
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/m", id="s")
    got = await collect(consumer, 2000)
    assert [b for b in got if b in set(persistent)] == persistent  # each kind in its own order
    assert [b for b in got if b in set(transient)] == transient
    assert queue.depth == 0
    assert await gone(tmp_path) == []
    await shutdown(broker, store)
    assert broker.temp is not None
    await broker.temp.store.close()


async def test_a_stomp_browser_sends_the_paged_then_the_spilled_messages(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path / "store", WINDOW, non_persistent="spill")  # type: ignore[arg-type]
    await spilling(tmp_path, broker)
    producer = await connected(broker)
    persistent, transient = numbered(700), numbered(700, 5000)
    await send_alternately(producer, persistent, transient)
    queue = broker.destinations.queues["/queue/m"]
    in_memory = queue.depth - queue.paged - queue.spilled
    assert queue.paged > 600 and queue.spilled > 600
    browser = await connected(broker)
    await browser.frame("SUBSCRIBE", destination="/queue/m", id="x", browser="true")
    got = [f.body for f in (await browsed(browser))[:-1]]
    assert len(got) == 1400
    assert set(got[in_memory:in_memory + queue.paged]) <= set(persistent)  # the paged ones, then
    assert set(got[in_memory + queue.paged:]) <= set(transient)  # the spilled ones
    assert [b for b in got if b in set(persistent)] == persistent
    assert [b for b in got if b in set(transient)] == transient
    await shutdown(broker, store)
    assert broker.temp is not None
    await broker.temp.store.close()


async def test_at_the_temp_usage_limit_a_send_is_refused_naming_it(tmp_path: Path) -> None:
    broker = await spilling(tmp_path, limit=64 * 1024, producer_flow_control_timeout=0)
    producer = await connected(broker)
    for i in range(400):
        await producer.raw("SEND", {"destination": "/queue/f"}, numbered(1, i, size=1000)[0])
        if producer.conn.errors():
            break
    assert producer.conn.errors() == ["temporary store full (limits.temp_usage)"]
    queue = broker.destinations.queues["/queue/f"]
    assert 50 <= queue.spilled <= 66  # 64 KiB of ~1.1 KiB records
    await stopped(broker)


async def test_a_failed_write_stops_spilling_and_loses_no_message(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    assert broker.temp is not None
    producer = await connected(broker)
    first = numbered(300, size=400)
    await send(producer, "/queue/w", first)  # several 64 KiB segments, their files open
    for name in files(tmp_path):
        os.unlink(tmp_path / "tmp" / name)
    os.rmdir(tmp_path / "tmp")  # the next segment cannot be made: its write fails
    queue = broker.destinations.queues["/queue/w"]
    rest = numbered(300, 1000, size=400)
    await send(producer, "/queue/w", rest)
    for _ in range(100):
        if broker.temp.failed:
            break
        await asyncio.sleep(0.01)
    assert broker.temp.failed
    before = queue.spilled
    await send(producer, "/queue/w", numbered(5, 5000, size=400))  # to memory now, under its limits
    assert queue.spilled == before and queue.depth == 605
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/w", id="s")
    got = await collect(consumer, 605)
    assert sorted(got) == sorted(first + rest + numbered(5, 5000, size=400))
    assert [b for b in got if b in set(first)] == first  # written before the failure: still in order
    assert queue.discarded == 0 and producer.conn.errors() == []
    await broker.stop()
    await broker.temp.store.close()


async def released(path: Path, broker: Broker) -> tuple[list[str], int]:
    """The segment files and temporary store bytes left once the releases queued have run."""
    assert broker.temp is not None
    for _ in range(100):
        if not files(path) and broker.temp.usage.used == 0:
            break
        await asyncio.sleep(0.01)
    return files(path), broker.temp.usage.used


DURABLE = {"destination": "/topic/t", "id": "1", "activemq.subscriptionName": "n"}


async def away_durable(broker: Broker, **headers: str) -> None:
    """Subscription `n` of client-id `c` to /topic/t, made and left: its queue keeps what is published."""
    sub = await connected(broker, client_id="c")
    await sub.raw("SUBSCRIBE", {**DURABLE, **headers, "receipt": "r"})
    await sub.settle()
    await sub.frame("DISCONNECT")


async def test_a_durable_subscription_spills_past_its_window_and_drains_in_order(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    await away_durable(broker)
    live = await connected(broker)  # a non-durable subscriber of the same topic never spills
    await live.frame("SUBSCRIBE", destination="/topic/t", id="live", ack="client", activemq_prefetchSize="1")
    producer = await connected(broker)
    bodies = numbered(3000)
    await send(producer, "/topic/t", bodies)
    queue = broker.destinations.durables["durable:c:n"].queue
    assert queue.depth == 3000 and queue.spilled > 2900
    assert queue.bytes <= 2 * WINDOW
    assert broker.temp is not None and broker.temp.usage.used > 2900 * 100
    (subscriber,) = [t.queue for t in broker.destinations.topics["/topic/t"].queues.values() if not t.durable]
    assert subscriber.spill is None and subscriber.spilled == 0
    assert broker.stats()["destinations"]["/topic/t"]["spilled"] == queue.spilled
    back = await connected(broker, client_id="c")
    await back.raw("SUBSCRIBE", DURABLE)
    assert await collect(back, 3000) == bodies
    assert queue.depth == 0 and queue.spilled == 0
    assert queue.spill is not None and queue.spill.reads > 5
    assert await released(tmp_path, broker) == ([], 0)
    await stopped(broker)


async def test_dropping_a_durable_subscription_releases_its_spilled_messages(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    producer = await connected(broker)
    # Three ways a subscription's queue goes: UNSUBSCRIBE while away, UNSUBSCRIBE attached, and a
    # SUBSCRIBE with another selector, which replaces it.
    for how in ("away", "attached", "selector"):
        await away_durable(broker)
        await send(producer, "/topic/t", numbered(2000))
        queue = broker.destinations.durables["durable:c:n"].queue
        assert queue.spilled > 1900, how
        back = await connected(broker, client_id="c")
        if how == "away":
            await back.raw("UNSUBSCRIBE", {"id": "1", "activemq.subscriptionName": "n", "receipt": "u"})
        elif how == "attached":
            await back.raw("SUBSCRIBE", {**DURABLE, "ack": "client", "activemq.prefetchSize": "1"})
            await back.raw("UNSUBSCRIBE", {"id": "1", "activemq.subscriptionName": "n", "receipt": "u"})
        else:
            await back.raw("SUBSCRIBE", {**DURABLE, "selector": "colour = 'blue'", "receipt": "u"})
        await back.settle()
        assert back.conn.errors() == [], how
        assert queue.depth == 0 and queue.spilled == 0, how
        assert await released(tmp_path, broker) == ([], 0), how
        await back.frame("DISCONNECT")
        if how == "selector":
            await send(producer, "/topic/t", numbered(3, 10), colour="blue")
            back = await connected(broker, client_id="c")
            await back.raw("SUBSCRIBE", {**DURABLE, "selector": "colour = 'blue'"})
            assert await collect(back, 3) == numbered(3, 10)  # the new one got only what came after
    await stopped(broker)


async def test_a_temporary_queue_spills_and_its_end_releases_the_temporary_store(tmp_path: Path) -> None:
    broker = await spilling(tmp_path)
    owner = await connected(broker)
    bodies = numbered(3000)
    await send(owner, "/temp-queue/r", bodies)
    name = temp_queue_name(broker)
    queue = broker.destinations.queues[name]
    assert queue.depth == 3000 and queue.spilled > 2900
    assert queue.bytes <= 2 * WINDOW
    await owner.frame("SUBSCRIBE", destination="/temp-queue/r", id="s")
    assert await collect(owner, 3000) == bodies
    assert queue.depth == 0 and queue.spilled == 0
    assert await released(tmp_path, broker) == ([], 0)
    await owner.frame("UNSUBSCRIBE", id="s")
    await send(owner, "/temp-queue/r", numbered(2000))
    assert queue.spilled > 1900 and await made(tmp_path, 1)
    await owner.frame("DISCONNECT")  # the temporary queue ends with its connection
    assert name not in broker.destinations.queues
    assert queue.depth == 0 and queue.spilled == 0
    assert await released(tmp_path, broker) == ([], 0)
    await stopped(broker)


async def test_a_durable_subscription_made_before_the_temporary_store_spills_once_started(
        tmp_path: Path) -> None:
    # As a hot standby's: its replay makes the subscriptions while a slave, the master's term gives
    # it the temporary store just before start().
    config = BrokerConfig(name="unit", connectors=["tcp://127.0.0.1:1"], store=settings(WINDOW),
                          limits=Limits(non_persistent="spill"))
    broker = Broker(config)
    broker.recover_subscription(DurableSubscription("durable:c:n", "c", "n", "/topic/t"))
    await spilling(tmp_path, broker)
    producer = await connected(broker)
    await send(producer, "/topic/t", numbered(500))
    assert broker.destinations.durables["durable:c:n"].queue.spilled > 450
    await stopped(broker)


async def test_a_temporary_queue_whose_share_is_full_spills_rather_than_hold_its_producer(
        tmp_path: Path) -> None:
    # A share smaller than the window: its limit, not the window, decides that a message spills;
    # flow control must then ask the temporary store, not the full share.
    broker = await spilling(tmp_path, destination_memory_limit=2048, producer_flow_control_timeout=0)
    owner = await connected(broker)
    await send(owner, "/temp-queue/r", numbered(200))
    assert owner.conn.errors() == []
    name = temp_queue_name(broker)
    assert broker.destinations.queues[name].spilled > 180
    await owner.frame("SUBSCRIBE", destination="/temp-queue/r", id="s")
    assert await collect(owner, 200) == numbered(200)
    await stopped(broker)


async def test_a_temporary_queues_persistent_messages_spill_and_come_back_persistent(tmp_path: Path) -> None:
    # With a store: a /queue/'s persistent messages page there as ever, a temporary queue's (never
    # stored) spill with its non-persistent ones, in one arrival order, and stay persistent.
    broker, store = await open_broker(tmp_path / "store", WINDOW, non_persistent="spill")  # type: ignore[arg-type]
    await spilling(tmp_path, broker)
    owner = await connected(broker)
    bodies = numbered(2000)
    for i, body in enumerate(bodies):  # three persistent to one non-persistent
        await owner.raw("SEND", {"destination": "/temp-queue/r", **({"persistent": "true"} if i % 4 else {})},
                        body)
    await send(owner, "/queue/q", numbered(500), persistent="true")
    stored = broker.destinations.queues["/queue/q"]
    assert stored.paged > 400 and stored.spilled == 0  # unchanged: in the store, not spilled
    name = temp_queue_name(broker)
    queue = broker.destinations.queues[name]
    assert queue.depth == 2000 and queue.spilled > 1900 and queue.paged == 0
    assert queue.bytes <= 2 * WINDOW
    page = await admin.browse(queue, 1000, 8)  # spilled ones, read from their records
    assert [m.body for m in page] == bodies[1000:1008]
    assert [m.persistent for m in page] == [i % 4 != 0 for i in range(1000, 1008)]
    await owner.frame("SUBSCRIBE", destination="/temp-queue/r", id="a")
    frames = await delivered(owner, 2000)
    assert [f.body for f in frames] == bodies
    assert [f.headers.get("persistent") for f in frames] == [None if i % 4 == 0 else "true"
                                                             for i in range(2000)]
    assert queue.depth == 0 and queue.spilled == 0
    assert await released(tmp_path, broker) == ([], 0)
    await owner.frame("UNSUBSCRIBE", id="a")
    # JMSDeliveryMode is the flag read back: a selector on it matches every spilled one.
    await send(owner, "/temp-queue/r", numbered(1000), persistent="true")
    assert queue.spilled > 900
    await owner.frame("SUBSCRIBE", destination="/temp-queue/r", id="p",
                      selector="JMSDeliveryMode = 'PERSISTENT'")
    assert await collect(owner, 1000) == numbered(1000)
    await owner.frame("UNSUBSCRIBE", id="p")
    await send(owner, "/temp-queue/r", numbered(2000), persistent="true")
    assert queue.spilled > 1900 and await made(tmp_path, 1)
    await owner.frame("DISCONNECT")  # the temporary queue ends with its connection
    assert name not in broker.destinations.queues and queue.depth == 0 and queue.spilled == 0
    assert await released(tmp_path, broker) == ([], 0)
    await shutdown(broker, store)
    assert broker.temp is not None
    await broker.temp.store.close()


async def test_a_temporary_queues_persistent_messages_meet_the_temp_usage_limit_not_its_share(
        tmp_path: Path) -> None:
    # A 2 KiB share would refuse a persistent SEND at once were it held in memory; it spills instead,
    # until limits.temp_usage refuses it.
    broker = await spilling(tmp_path, limit=64 * 1024, destination_memory_limit=2048,
                            producer_flow_control_timeout=0)
    owner = await connected(broker)
    await owner.frame("SUBSCRIBE", destination="/temp-queue/r", id="s", ack="client")  # makes it
    name = temp_queue_name(broker)
    queue = broker.destinations.queues[name]
    await owner.frame("UNSUBSCRIBE", id="s")
    spilled = 0
    for i in range(400):
        await owner.raw("SEND", {"destination": "/temp-queue/r", "persistent": "true"},
                        numbered(1, i, size=1000)[0])
        if owner.conn.errors():
            break
        spilled = queue.spilled  # the ERROR ends the connection, and its temporary queue
    assert owner.conn.errors() == ["temporary store full (limits.temp_usage)"]
    assert 50 <= spilled <= 66  # 64 KiB of ~1.1 KiB records
    assert await released(tmp_path, broker) == ([], 0)
    await stopped(broker)


async def test_admin_and_a_browser_see_a_temporary_queues_spilled_persistent_messages(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path / "store", WINDOW, non_persistent="spill")  # type: ignore[arg-type]
    await spilling(tmp_path, broker)
    owner = await connected(broker)
    bodies = numbered(1200)
    await send(owner, "/temp-queue/r", bodies, persistent="true")
    name = temp_queue_name(broker)
    queue = broker.destinations.queues[name]
    assert queue.spilled > 1100
    await owner.frame("SUBSCRIBE", destination="/temp-queue/r", id="x", browser="true")
    frames = await browsed(owner)
    assert [f.body for f in frames[:-1]] == bodies
    assert {f.headers.get("persistent") for f in frames[:-1]} == {"true"}
    victim = (await admin.browse(queue, 600, 1))[0]  # spilled, far from either end
    await admin.remove(broker, queue, victim.message_id)
    assert queue.depth == 1199 and queue.dequeued == 1
    rest = [body for body in bodies if body != victim.body]
    # Moved to a /queue/, a persistent message is stored there (a write, as for one in memory).
    moved = await admin.move(broker, queue, "/queue/dst", limit=400)
    assert moved.moved == 400 and queue.depth == 799
    target = broker.destinations.queues["/queue/dst"]
    assert target.spilled == 0 and target.paged > 300
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/dst", id="d")
    got = await delivered(consumer, 400)
    assert [f.body for f in got] == rest[:400] and {f.headers.get("persistent") for f in got} == {"true"}
    await owner.frame("SUBSCRIBE", destination="/temp-queue/r", id="s")
    assert await collect(owner, 799) == rest[400:]
    assert queue.depth == 0 and await released(tmp_path, broker) == ([], 0)
    await shutdown(broker, store)
    assert broker.temp is not None
    await broker.temp.store.close()
