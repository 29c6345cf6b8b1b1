"""Session semantics without sockets: connect, send/subscribe, errors (STOMP 1.2 and ActiveMQ conventions)."""

from __future__ import annotations

import asyncio

import pytest

from broker.engine.message import now_ms
from tests.unit.broker.memconn import Client, make_broker


async def connected(broker, version: str = "1.2", **headers: str) -> Client:
    client = Client(broker)
    await client.connect(version, **headers)
    return client


async def test_connect_negotiates_version_and_heartbeat() -> None:
    broker = make_broker(heartbeat_send_ms=5000, heartbeat_recv_ms=4000)
    client = Client(broker)
    frame = await client.connect("1.0,1.1", heart_beat="1000,7000")
    assert frame.headers["version"] == "1.1"
    assert frame.headers["server"] == "BatonMQ/0.1"
    assert frame.headers["session"]
    assert frame.headers["heart-beat"] == "7000,4000"
    assert client.conn.heartbeat == (7000, 4000) and client.conn.version == "1.1"


async def test_connect_without_accept_version_is_stomp_1_0() -> None:
    client = Client(make_broker())
    await client.frame("CONNECT", login="u", passcode="p", heart_beat="1000,1000")
    (frame,) = client.conn.take("CONNECTED")
    # As ActiveMQ: a 1.0 CONNECTED says heart-beat:0,0 (STOMP 1.0 has no heart-beating).
    assert frame.headers["version"] == "1.0" and frame.headers["heart-beat"] == "0,0"
    assert client.conn.heartbeat == (0, 0)


async def test_no_common_version_is_an_error_and_closes() -> None:
    client = Client(make_broker())
    await client.frame("CONNECT", accept_version="2.0")
    assert client.conn.errors() == ["unsupported protocol version"]
    assert client.conn.closed


@pytest.mark.parametrize(
    ("command", "headers", "message"),
    [
        ("FOO", {}, "unknown command"),
        ("SEND", {}, "missing destination"),
        ("SEND", {"destination": "/queue/"}, "invalid destination"),
        ("SUBSCRIBE", {"destination": "/topic/", "id": "1"}, "invalid destination"),
        ("SUBSCRIBE", {"destination": "/queue/a"}, "missing id"),
        ("ACK", {"id": "nope"}, "unknown ack id"),
        ("COMMIT", {"transaction": "t"}, "unknown transaction"),
        ("CONNECT", {"accept-version": "1.2"}, "already connected"),
        ("SUBSCRIBE", {"destination": "/queue/a", "id": "1", "selector": "a = "}, "invalid selector"),
        ("SEND", {"destination": "/queue/a", "expires": "soon"}, "invalid expires header"),
    ],
)
async def test_client_errors_send_error_then_close(
    command: str, headers: dict[str, str], message: str
) -> None:
    client = await connected(make_broker())
    await client.raw(command, {**headers, "receipt": "r"})
    (error,) = client.conn.take("ERROR")
    assert error.headers["message"] == message
    assert error.headers["receipt-id"] == "r" and error.body
    assert client.conn.closed
    await client.frame("SEND", destination="/queue/a", receipt="later")
    assert client.conn.sent == []  # nothing after the ERROR


async def test_frame_before_connect_is_an_error() -> None:
    client = Client(make_broker())
    await client.frame("SEND", destination="/queue/a")
    assert client.conn.errors() == ["not connected"] and client.conn.closed


async def test_duplicate_transaction_is_an_error() -> None:
    client = await connected(make_broker())
    await client.frame("BEGIN", transaction="t")
    await client.frame("BEGIN", transaction="t")
    assert client.conn.errors() == ["duplicate transaction"]


@pytest.mark.parametrize("name", ["orders", "/bogus/x", "a.b.c"])
async def test_a_name_without_a_prefix_is_the_queue_of_that_name(name: str) -> None:
    # ActiveMQ: a STOMP destination with neither /queue/ nor /topic/ is the queue `name`.
    broker = make_broker()
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination=f"/queue/{name}", id="s")
    producer = await connected(broker)
    await producer.frame("SEND", body=b"1", destination=name, receipt="r")
    (frame,) = consumer.messages()
    assert frame.headers["destination"] == f"/queue/{name}" and frame.body == b"1"
    assert list(broker.destinations.queues) == [f"/queue/{name}"]


async def test_stomp_1_0_unsubscribes_a_prefixless_destination_by_its_name() -> None:
    broker = make_broker()
    client = await connected(broker, "1.0")
    await client.frame("SUBSCRIBE", destination="orders")
    await client.frame("UNSUBSCRIBE", destination="orders", receipt="u")
    assert [f.headers["receipt-id"] for f in client.conn.take("RECEIPT")] == ["u"]
    assert broker.destinations.queues["/queue/orders"].consumers == []


async def test_duplicate_subscription_id_is_an_error_that_keeps_the_connection() -> None:
    broker = make_broker()
    client = await connected(broker)
    await client.frame("SUBSCRIBE", destination="/queue/a", id="s", receipt="1")
    await client.frame("SUBSCRIBE", destination="/queue/b", id="s", receipt="2")
    (error,) = client.conn.take("ERROR")
    assert error.headers["message"] == "duplicate subscription" and error.headers["receipt-id"] == "2"
    assert not client.conn.closed
    # The first subscription is untouched, the second was never made.
    producer = await connected(broker)
    await producer.frame("SEND", destination="/queue/a", body=b"to-a")
    await producer.frame("SEND", destination="/queue/b", body=b"to-b")
    assert [f.body for f in client.messages()] == [b"to-a"]
    assert broker.destinations.queues["/queue/b"].depth == 1


async def test_receipt_for_every_frame_in_order() -> None:
    client = await connected(make_broker())
    await client.frame("SUBSCRIBE", destination="/queue/a", id="s", receipt="1")
    await client.frame("SEND", destination="/queue/b", receipt="2")
    await client.frame("UNSUBSCRIBE", id="s", receipt="3")
    await client.frame("DISCONNECT", receipt="4")
    assert [f.headers["receipt-id"] for f in client.conn.take("RECEIPT")] == ["1", "2", "3", "4"]
    assert client.conn.closed


async def test_message_headers() -> None:
    broker = make_broker()
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/a", id="s", ack="client")
    producer = await connected(broker)
    headers = {"destination": "/queue/a", "receipt": "r", "custom": "v", "persistent": "true",
               "priority": "7", "content-length": "2", "transaction-x": "kept"}
    await producer.raw("SEND", headers, b"hi")
    (frame,) = consumer.messages()
    h = frame.headers
    assert h["destination"] == "/queue/a" and h["subscription"] == "s" and h["message-id"].startswith("ID:")
    assert h["custom"] == "v" and h["persistent"] == "true" and h["priority"] == "7" and h["timestamp"]
    assert h["ack"] and "receipt" not in h and "content-length" not in h and h["transaction-x"] == "kept"
    assert "redelivered" not in h and frame.body == b"hi"


async def test_queue_round_robin_exactly_once() -> None:
    broker = make_broker()
    consumers = [await connected(broker) for _ in range(3)]
    for c in consumers:
        await c.frame("SUBSCRIBE", destination="/queue/rr", id="s")
    producer = await connected(broker)
    for i in range(9):
        await producer.frame("SEND", str(i).encode(), destination="/queue/rr")
    got = [c.bodies() for c in consumers]
    assert [len(g) for g in got] == [3, 3, 3]
    assert sorted(b for g in got for b in g) == [str(i).encode() for i in range(9)]


async def test_topic_fan_out_only_while_subscribed() -> None:
    broker = make_broker()
    a, b = await connected(broker), await connected(broker)
    producer = await connected(broker)
    await a.frame("SUBSCRIBE", destination="/topic/t", id="1")
    await producer.frame("SEND", b"one", destination="/topic/t")
    await b.frame("SUBSCRIBE", destination="/topic/t", id="1")
    await producer.frame("SEND", b"two", destination="/topic/t")
    assert a.bodies() == [b"one", b"two"] and b.bodies() == [b"two"]


async def test_priority_and_expiry() -> None:
    broker = make_broker()
    producer = await connected(broker)
    await producer.frame("SEND", b"low", destination="/queue/p", priority="1")
    await producer.frame("SEND", b"old", destination="/queue/p", expires=str(now_ms() + 50))
    await producer.frame("SEND", b"high", destination="/queue/p", priority="9")
    await producer.frame("SEND", b"dead", destination="/queue/p", expires=str(now_ms() - 1))
    await producer.frame("SEND", b"normal", destination="/queue/p")
    import asyncio

    await asyncio.sleep(0.08)
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/p", id="s")
    assert consumer.bodies() == [b"high", b"normal", b"low"]
    assert broker.stats()["destinations"]["/queue/p"]["expired"] == 1


async def test_selector_filters_queue_delivery() -> None:
    broker = make_broker()
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/s", id="s", selector="colour = 'red' AND size > 2")
    producer = await connected(broker)
    await producer.frame("SEND", b"1", destination="/queue/s", colour="red", size="3")
    await producer.frame("SEND", b"2", destination="/queue/s", colour="blue", size="3")
    await producer.frame("SEND", b"3", destination="/queue/s", colour="red", size="1")
    assert consumer.bodies() == [b"1"]
    other = await connected(broker)
    await other.frame("SUBSCRIBE", destination="/queue/s", id="s")
    assert other.bodies() == [b"2", b"3"]


async def test_destination_memory_limit_refuses_sends() -> None:
    # A flow-control timeout of 0 is ActiveMQ's sendFailIfNoSpace: refused at once.
    broker = make_broker(destination_memory_limit=4096, producer_flow_control_timeout=0)
    producer = await connected(broker)
    for _ in range(3):
        await producer.frame("SEND", b"x" * 1000, destination="/queue/full", receipt="r")
    assert len(producer.conn.take("RECEIPT")) == 3
    await producer.frame("SEND", b"x" * 1000, destination="/queue/full", receipt="r")
    assert producer.conn.errors() == ["destination full (limits.destination_memory_limit)"]
    assert broker.stats()["destinations"]["/queue/full"]["depth"] == 3


async def test_a_send_to_a_full_destination_waits_until_a_consumer_makes_room() -> None:
    broker = make_broker(destination_memory_limit=4096, producer_flow_control_timeout=30)
    producer = await connected(broker)
    for _ in range(3):
        await producer.frame("SEND", b"x" * 1000, destination="/queue/full", receipt="r")
    waiting = asyncio.ensure_future(
        producer.frame("SEND", b"y" * 1000, destination="/queue/full", receipt="late"))
    await asyncio.sleep(0.2)
    assert not waiting.done() and producer.conn.errors() == []  # held back, not refused
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/full", id="1", ack="auto")
    await asyncio.wait_for(waiting, 10)
    assert producer.conn.errors() == [] and len(producer.conn.take("RECEIPT")) == 4
    assert broker.memory.used == 0 or broker.stats()["destinations"]["/queue/full"]["depth"] <= 1


async def test_duplicate_producer_id_is_receipted_but_not_delivered_twice() -> None:
    broker = make_broker()
    producer = await connected(broker)
    for _ in range(2):
        headers = {"destination": "/queue/d", "receipt": "r", "batonmq.producer-id": "p-1"}
        await producer.raw("SEND", headers, b"m")
    assert len(producer.conn.take("RECEIPT")) == 2
    assert broker.stats()["destinations"]["/queue/d"]["depth"] == 1


async def test_fence_lost_refuses_sends_and_receipts() -> None:
    broker = make_broker()
    client = await connected(broker)
    broker.fence_lost()
    await client.frame("SUBSCRIBE", destination="/queue/a", id="1", receipt="r")
    assert client.conn.take("RECEIPT") == []
    await client.frame("SEND", destination="/queue/a", receipt="r2")
    assert client.conn.errors() == ["broker is not master"]


async def test_client_id_in_use() -> None:
    broker = make_broker()
    await connected(broker, client_id="c")
    other = Client(broker)
    await other.frame("CONNECT", accept_version="1.2", client_id="c")
    assert other.conn.errors() == ["client-id in use"]


async def test_a_topic_subscriber_that_does_not_read_loses_its_oldest_not_the_producer_its_turn() -> None:
    broker = make_broker(topic_pending_limit=5, producer_flow_control_timeout=0)
    slow, fast, producer = await connected(broker), await connected(broker), await connected(broker)
    for client in (slow, fast):
        await client.frame("SUBSCRIBE", destination="/topic/t", id="1", ack="auto")
    slow.conn.pause()  # its transport's buffer is full: dispatch to it stops
    for i in range(20):
        await producer.frame("SEND", str(i).encode(), destination="/topic/t", receipt=f"r{i}")
    assert len(producer.conn.take("RECEIPT")) == 20 and producer.conn.errors() == []
    stats = broker.stats()["destinations"]["/topic/t"]
    assert stats["depth"] == 5 and stats["discarded"] == 15  # the slow one keeps its newest five
    assert fast.conn.errors() == [] and len(fast.conn.take("MESSAGE")) == 20
    slow.conn.resume()
    assert [m.body for m in slow.conn.take("MESSAGE")] == [str(i).encode() for i in range(15, 20)]


async def test_a_topic_subscriber_at_its_prefetch_gets_the_rest_in_order_after_acks() -> None:
    # The first messages go straight to the subscriber (Queue.offer), the rest wait in its queue.
    broker = make_broker()
    sub, other = await connected(broker), await connected(broker)
    await sub.frame("SUBSCRIBE", destination="/topic/p", id="s", ack="client-individual",
                    activemq_prefetchSize="2")
    await other.frame("SUBSCRIBE", destination="/topic/p", id="o")
    producer = await connected(broker)
    for n in range(5):
        await producer.frame("SEND", str(n).encode(), destination="/topic/p")
    first = sub.messages()
    assert [f.body for f in first] == [b"0", b"1"] and len(other.messages()) == 5
    got = []
    for _ in range(3):
        await sub.frame("ACK", id=first.pop(0).headers["ack"])
        first += sub.messages()
        got.append(first[-1].body)
    assert got == [b"2", b"3", b"4"]
