"""The broker over a real store (LevelDB, in tmp_path): what is written when, recovery, fencing.

Each test reopens the store directory with a fresh store object, exactly as a restarted master does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker.engine.core import Broker
from config.model import BrokerConfig, Limits, StoreSettings
from stores.base import Fence, Recovered, StoreClosed
from stores.leveldb.store import LevelDBStore
from tests.unit.broker.memconn import Client


class SwitchFence(Fence):
    """A fence the test can flip, as the lock module flips its own when the keep-alive fails."""

    epoch = 1

    def __init__(self) -> None:
        self.lost = False

    def check(self) -> None:
        if self.lost:
            raise StoreClosed("lock lost (test)")


async def open_broker(path: Path, fence: Fence | None = None, **limits: int) -> tuple[Broker, LevelDBStore]:
    store = LevelDBStore(path, StoreSettings(type="leveldb", duplicate_window=100), fence)
    recovered = await store.open()
    config = BrokerConfig(name="unit", connectors=["tcp://127.0.0.1:1"], limits=Limits(**limits))
    broker = Broker(config, store)
    await broker.start(recovered)
    return broker, store


async def reopen(path: Path) -> Recovered:
    store = LevelDBStore(path, StoreSettings(type="leveldb", duplicate_window=100))
    try:
        return await store.open()
    finally:
        await store.close()


async def shutdown(broker: Broker, store: LevelDBStore) -> None:
    await broker.stop()
    await store.close()


async def connected(broker: Broker, **headers: str) -> Client:
    client = Client(broker)
    await client.connect("1.2", **headers)
    return client


async def test_persistent_send_is_stored_before_its_receipt(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    await producer.raw("SEND", {"destination": "/queue/p", "persistent": "true", "receipt": "r"}, b"kept")
    await producer.frame("SEND", b"memory-only", destination="/queue/p", receipt="r2")
    await producer.settle()
    assert [f.headers["receipt-id"] for f in producer.conn.take("RECEIPT")] == ["r", "r2"]
    await shutdown(broker, store)
    recovered = await reopen(tmp_path)
    assert [m.body for m in recovered.queues["/queue/p"]] == [b"kept"]


async def test_ack_removes_and_recovery_redelivers(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    for body in (b"a", b"b", b"c"):
        await producer.raw("SEND", {"destination": "/queue/r", "persistent": "true"}, body)
    await producer.settle()
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/r", id="s", ack="client-individual")
    frames = consumer.messages()
    await consumer.frame("ACK", id=frames[1].headers["ack"])
    await asyncio.sleep(0.05)  # removals are batched per loop turn
    await shutdown(broker, store)

    broker, store = await open_broker(tmp_path)
    again = await connected(broker)
    await again.frame("SUBSCRIBE", destination="/queue/r", id="s")
    frames = again.messages()
    assert [f.body for f in frames] == [b"a", b"c"]
    assert all(f.headers["redelivered"] == "true" for f in frames)  # conservative "possibly delivered"
    await asyncio.sleep(0.05)
    await shutdown(broker, store)
    assert (await reopen(tmp_path)).queues.get("/queue/r", []) == []


async def test_durable_subscription_survives_restart(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    sub = await connected(broker, client_id="c")
    await sub.raw("SUBSCRIBE", {"destination": "/topic/t", "id": "1", "activemq.subscriptionName": "n",
                                "receipt": "r"})
    await sub.settle()
    await sub.frame("DISCONNECT")
    producer = await connected(broker)
    await producer.raw("SEND", {"destination": "/topic/t", "persistent": "true", "receipt": "r"}, b"t1")
    await producer.settle()
    assert producer.conn.take("RECEIPT")
    await shutdown(broker, store)

    broker, store = await open_broker(tmp_path)
    back = await connected(broker, client_id="c")
    await back.raw("SUBSCRIBE", {"destination": "/topic/t", "id": "1", "activemq.subscriptionName": "n"})
    assert back.bodies() == [b"t1"]
    await back.raw("UNSUBSCRIBE", {"id": "1", "activemq.subscriptionName": "n", "receipt": "u"})
    await back.settle()
    await shutdown(broker, store)
    recovered = await reopen(tmp_path)
    assert recovered.subscriptions == [] and "durable:c:n" not in recovered.queues


async def test_duplicate_window_survives_restart(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    headers = {"destination": "/queue/d", "persistent": "true", "receipt": "r", "batonmq.producer-id": "p:1"}
    await producer.raw("SEND", headers, b"once")
    await producer.raw("SEND", headers, b"once")  # while the first may still be in flight
    await producer.settle()
    assert len(producer.conn.take("RECEIPT")) == 2
    await shutdown(broker, store)

    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    await producer.raw("SEND", headers, b"once")
    await producer.settle()
    assert len(producer.conn.take("RECEIPT")) == 1
    assert broker.stats()["destinations"]["/queue/d"]["depth"] == 1
    await shutdown(broker, store)


async def test_receipts_keep_frame_order_with_overlapping_writes(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    for i in range(200):
        persistent = "true" if i % 3 else "false"
        await producer.raw("SEND", {"destination": "/queue/o", "persistent": persistent, "receipt": str(i)},
                           str(i).encode())
    await producer.settle()
    assert [f.headers["receipt-id"] for f in producer.conn.take("RECEIPT")] == [str(i) for i in range(200)]
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/o", id="s")
    assert consumer.bodies() == [str(i).encode() for i in range(200)]
    await shutdown(broker, store)


async def test_lost_fence_means_error_and_no_receipt(tmp_path: Path) -> None:
    fence = SwitchFence()
    broker, store = await open_broker(tmp_path, fence)
    producer = await connected(broker)
    bystander = await connected(broker)
    fence.lost = True
    await producer.raw("SEND", {"destination": "/queue/f", "persistent": "true", "receipt": "r"}, b"x")
    await producer.settle()
    assert producer.conn.take("RECEIPT") == []
    assert producer.conn.errors() == ["message not persisted"]
    assert broker.fenced
    await bystander.frame("SEND", destination="/queue/f", receipt="r")
    assert bystander.conn.errors() == ["broker is not master"]
    await shutdown(broker, store)


async def test_transaction_commit_is_one_atomic_write(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    producer = await connected(broker)
    await producer.frame("BEGIN", transaction="t")
    for body in (b"1", b"2"):
        headers = {"destination": "/queue/tx", "persistent": "true", "transaction": "t"}
        await producer.raw("SEND", headers, body)
    await producer.frame("COMMIT", transaction="t", receipt="c")
    await producer.settle()
    assert producer.conn.take("RECEIPT")
    await shutdown(broker, store)
    assert [m.body for m in (await reopen(tmp_path)).queues["/queue/tx"]] == [b"1", b"2"]


async def test_dead_lettered_message_is_stored_in_the_dlq(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path, max_redeliveries=0)
    producer = await connected(broker)
    await producer.raw("SEND", {"destination": "/queue/n", "persistent": "true"}, b"poison")
    await producer.settle()
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/n", id="s", ack="client")
    (frame,) = consumer.messages()
    await consumer.frame("NACK", id=frame.headers["ack"])
    await asyncio.sleep(0.1)
    await shutdown(broker, store)
    recovered = await reopen(tmp_path)
    assert recovered.queues.get("/queue/n", []) == []
    assert [m.body for m in recovered.queues["/queue/ActiveMQ.DLQ"]] == [b"poison"]
