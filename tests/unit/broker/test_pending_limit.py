"""activemq.maximumPendingMessageLimit: a slow non-durable topic subscriber keeps the newest messages."""

from __future__ import annotations

from tests.unit.broker.memconn import Client, make_broker


async def connected(broker, **headers: str) -> Client:  # type: ignore[no-untyped-def]
    client = Client(broker)
    await client.connect("1.2", **headers)
    return client


async def publish(producer: Client, count: int, destination: str = "/topic/t") -> None:
    for i in range(count):
        await producer.raw("SEND", {"destination": destination}, str(i).encode())


async def test_a_stalled_subscriber_keeps_only_the_newest_pending_messages() -> None:
    broker = make_broker()
    slow, fast = await connected(broker), await connected(broker)
    await slow.frame("SUBSCRIBE", destination="/topic/t", id="s", activemq_maximumPendingMessageLimit="3")
    await fast.frame("SUBSCRIBE", destination="/topic/t", id="s")
    slow.conn.pause()  # its socket is full: nothing more can be written to it
    producer = await connected(broker)
    await publish(producer, 10)
    assert fast.bodies() == [str(i).encode() for i in range(10)]  # the fast one loses nothing
    assert broker.destinations.topics["/topic/t"].stats()["discarded"] == 7
    slow.conn.resume()
    assert slow.bodies() == [b"7", b"8", b"9"]


async def test_the_limit_counts_beyond_the_prefetch_window() -> None:
    broker = make_broker()
    slow = await connected(broker)
    await slow.frame("SUBSCRIBE", destination="/topic/t", id="s", ack="client-individual",
                     activemq_prefetchSize="2", activemq_maximumPendingMessageLimit="0")
    producer = await connected(broker)
    await publish(producer, 6)
    frames = slow.messages()
    assert [f.body for f in frames] == [b"0", b"1"]  # the prefetched ones; 2..5 found no room
    for frame in frames:
        await slow.frame("ACK", id=frame.headers["ack"])
    assert slow.bodies() == []
    await publish(producer, 1)
    assert slow.bodies() == [b"0"]  # the next message is delivered: there is room again


async def test_no_limit_keeps_everything_and_durable_subscriptions_ignore_it() -> None:
    broker = make_broker()
    plain = await connected(broker)
    durable = await connected(broker, client_id="c1")
    await plain.frame("SUBSCRIBE", destination="/topic/t", id="s")
    await durable.frame("SUBSCRIBE", destination="/topic/t", id="s", activemq_subscriptionName="d",
                        activemq_maximumPendingMessageLimit="1")
    plain.conn.pause()
    durable.conn.pause()
    producer = await connected(broker)
    await publish(producer, 5)
    plain.conn.resume()
    durable.conn.resume()
    assert plain.bodies() == durable.bodies() == [str(i).encode() for i in range(5)]


async def test_an_invalid_limit_is_an_error() -> None:
    client = await connected(make_broker())
    await client.frame("SUBSCRIBE", destination="/topic/t", id="s", activemq_maximumPendingMessageLimit="-5")
    assert client.conn.errors() == ["invalid maximumPendingMessageLimit"]
