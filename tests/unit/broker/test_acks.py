"""Ack modes, NACK / dead-letter, prefetch, redelivery on disconnect, transactions, durable subscriptions."""

from __future__ import annotations

from broker.engine.destinations import DLQ
from tests.unit.broker.memconn import Client, make_broker


async def connected(broker, version: str = "1.2", **headers: str) -> Client:
    client = Client(broker)
    await client.connect(version, **headers)
    return client


async def fill(broker, destination: str, n: int, **headers: str) -> None:
    producer = await connected(broker)
    for i in range(n):
        await producer.frame("SEND", str(i).encode(), destination=destination, **headers)


async def test_client_ack_is_cumulative() -> None:
    broker = make_broker()
    await fill(broker, "/queue/a", 5)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/a", id="s", ack="client")
    frames = consumer.messages()
    await consumer.frame("ACK", id=frames[2].headers["ack"])
    stats = broker.stats()["destinations"]["/queue/a"]
    assert stats["dequeued"] == 3 and stats["in_flight"] == 2
    consumer.lose()
    again = await connected(broker)
    await again.frame("SUBSCRIBE", destination="/queue/a", id="s")
    frames = again.messages()
    assert [f.body for f in frames] == [b"3", b"4"]
    assert all(f.headers["redelivered"] == "true" for f in frames)


async def test_client_individual_ack() -> None:
    broker = make_broker()
    await fill(broker, "/queue/a", 3)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/a", id="s", ack="client-individual")
    frames = consumer.messages()
    await consumer.frame("ACK", id=frames[1].headers["ack"])
    await consumer.frame("UNSUBSCRIBE", id="s")
    await consumer.frame("SUBSCRIBE", destination="/queue/a", id="s2")
    assert consumer.bodies() == [b"0", b"2"]


async def test_ack_by_message_id_in_1_1_and_1_0() -> None:
    broker = make_broker()
    await fill(broker, "/queue/a", 2)
    c11 = await connected(broker, "1.1")
    await c11.frame("SUBSCRIBE", destination="/queue/a", id="s", ack="client", activemq_prefetchSize="1")
    (frame,) = c11.messages()
    assert "ack" not in frame.headers
    await c11.frame("ACK", message_id=frame.headers["message-id"], subscription="s", receipt="r")
    assert c11.conn.take("RECEIPT") and c11.conn.errors() == []
    c10 = await connected(broker, "1.0")
    await c10.frame("SUBSCRIBE", destination="/queue/a", ack="client")  # 1.0: no id needed
    await c11.frame("UNSUBSCRIBE", id="s")
    (frame,) = c10.messages()
    assert frame.headers["subscription"] == "/queue/a"
    await c10.frame("ACK", message_id=frame.headers["message-id"])
    assert c10.conn.errors() == []
    assert broker.stats()["destinations"]["/queue/a"]["dequeued"] == 2


async def test_prefetch_limits_unacked_messages() -> None:
    broker = make_broker()
    await fill(broker, "/queue/a", 10)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/a", id="s", ack="client-individual",
                         activemq_prefetchSize="3")
    frames = consumer.messages()
    assert len(frames) == 3
    await consumer.frame("ACK", id=frames[0].headers["ack"])
    assert consumer.bodies() == [b"3"]


async def test_nack_redelivers_then_dead_letters() -> None:
    broker = make_broker(max_redeliveries=2)
    await fill(broker, "/queue/n", 1)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/n", id="s", ack="client-individual")
    seen = []
    for _ in range(3):
        (frame,) = consumer.messages()
        seen.append(frame.headers.get("redelivered"))
        await consumer.frame("NACK", id=frame.headers["ack"])
    assert seen == [None, "true", "true"]
    assert consumer.messages() == []
    dlq = await connected(broker)
    await dlq.frame("SUBSCRIBE", destination=DLQ, id="d")
    (frame,) = dlq.messages()
    assert frame.body == b"0" and frame.headers["original-destination"] == "/queue/n"


async def test_unknown_ack_id_after_ack() -> None:
    broker = make_broker()
    await fill(broker, "/queue/a", 1)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/a", id="s", ack="client")
    (frame,) = consumer.messages()
    await consumer.frame("ACK", id=frame.headers["ack"])
    await consumer.frame("ACK", id=frame.headers["ack"])
    assert consumer.conn.errors() == ["unknown ack id"]


async def test_flow_control_pauses_dispatch() -> None:
    broker = make_broker()
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/f", id="s")
    consumer.conn.pause()
    await fill(broker, "/queue/f", 5)
    assert consumer.messages() == []
    assert broker.stats()["destinations"]["/queue/f"]["depth"] == 5
    consumer.conn.resume()
    assert len(consumer.messages()) == 5


async def test_transaction_commit_and_abort() -> None:
    broker = make_broker()
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/t", id="s", ack="client-individual")
    producer = await connected(broker)
    await producer.frame("BEGIN", transaction="tx")
    await producer.frame("SEND", b"a", destination="/queue/t", transaction="tx")
    await producer.frame("SEND", b"b", destination="/queue/t", transaction="tx")
    assert consumer.messages() == []
    await producer.frame("COMMIT", transaction="tx", receipt="c")
    frames = consumer.messages()
    assert [f.body for f in frames] == [b"a", b"b"] and producer.conn.take("RECEIPT")
    await producer.frame("BEGIN", transaction="tx2")
    await producer.frame("SEND", b"c", destination="/queue/t", transaction="tx2")
    await producer.frame("ABORT", transaction="tx2")
    assert consumer.messages() == []
    # An ACK inside a transaction takes effect only at COMMIT; ABORT leaves the message unacked.
    await consumer.frame("BEGIN", transaction="ack")
    await consumer.frame("ACK", id=frames[0].headers["ack"], transaction="ack")
    await consumer.frame("ABORT", transaction="ack")
    assert broker.stats()["destinations"]["/queue/t"]["in_flight"] == 2
    await consumer.frame("BEGIN", transaction="ack2")
    await consumer.frame("ACK", id=frames[0].headers["ack"], transaction="ack2")
    await consumer.frame("COMMIT", transaction="ack2")
    assert broker.stats()["destinations"]["/queue/t"]["in_flight"] == 1


async def test_transaction_aborted_on_disconnect() -> None:
    broker = make_broker()
    producer = await connected(broker)
    await producer.frame("BEGIN", transaction="tx")
    await producer.frame("SEND", b"a", destination="/queue/t", transaction="tx")
    await producer.frame("DISCONNECT")
    assert producer.conn.closed
    assert broker.stats()["destinations"].get("/queue/t", {"depth": 0})["depth"] == 0


async def test_durable_subscription_keeps_messages_while_away() -> None:
    broker = make_broker()
    sub = await connected(broker, client_id="c1")
    await sub.frame("SUBSCRIBE", destination="/topic/d", id="1", activemq_subscriptionName="n")
    await sub.frame("DISCONNECT")
    producer = await connected(broker)
    await producer.frame("SEND", b"while-away", destination="/topic/d")
    back = await connected(broker, client_id="c1")
    await back.frame("SUBSCRIBE", destination="/topic/d", id="1", activemq_subscriptionName="n")
    assert back.bodies() == [b"while-away"]
    await back.frame("UNSUBSCRIBE", id="1", activemq_subscriptionName="n")
    await producer.frame("SEND", b"after-removal", destination="/topic/d")
    assert "durable:c1:n" not in broker.destinations.durables
    await back.frame("SUBSCRIBE", destination="/topic/d", id="2", activemq_subscriptionName="n")
    assert back.bodies() == []


async def test_durable_subscription_needs_client_id() -> None:
    client = await connected(make_broker())
    await client.frame("SUBSCRIBE", destination="/topic/d", id="1", activemq_subscriptionName="n")
    assert client.conn.errors() == ["missing client-id"]
