"""The store cursor (broker/engine/cursor.py) over a real journal store in tmp_path: a small window,
backlogs far larger than it, drained in store order with nothing lost or duplicated."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from broker.engine.core import Broker
from config.model import BrokerConfig, Limits, StoreSettings
from stores.base import Recovered
from stores.journal.store import JournalStore
from tests.unit.broker.memconn import Client

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
    bodies: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < count and time.monotonic() < deadline:
        bodies.extend(client.bodies())
        if len(bodies) < count:
            await asyncio.sleep(0.005)
    return bodies


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
