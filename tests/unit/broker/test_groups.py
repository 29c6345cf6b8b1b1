"""Exclusive consumers and message groups (broker/engine/groups.py), through real sessions."""

from __future__ import annotations

from broker.engine.groups import MAX_GROUPS
from tests.unit.broker.memconn import Client, make_broker


async def connected(broker) -> Client:  # type: ignore[no-untyped-def]
    client = Client(broker)
    await client.connect("1.2")
    return client


async def send(producer: Client, body: str, **headers: str) -> None:
    await producer.raw("SEND", {"destination": "/queue/g", **headers}, body.encode())


async def test_an_exclusive_consumer_gets_everything_and_the_next_one_takes_over() -> None:
    broker = make_broker()
    first, second, plain = [await connected(broker) for _ in range(3)]
    await first.frame("SUBSCRIBE", destination="/queue/g", id="s", ack="client-individual",
                      activemq_exclusive="true")
    await second.frame("SUBSCRIBE", destination="/queue/g", id="s", activemq_exclusive="true")
    await plain.frame("SUBSCRIBE", destination="/queue/g", id="s")
    producer = await connected(broker)
    for i in range(6):
        await send(producer, str(i))
    assert first.bodies() == [b"0", b"1", b"2", b"3", b"4", b"5"]
    assert second.bodies() == [] and plain.bodies() == []
    first.lose()  # its six unacked messages go to the next exclusive consumer, in order
    frames = second.messages()
    assert [f.body for f in frames] == [b"0", b"1", b"2", b"3", b"4", b"5"]
    assert all(f.headers["redelivered"] == "true" for f in frames)
    await send(producer, "6")
    assert second.bodies() == [b"6"] and plain.bodies() == []
    await second.frame("UNSUBSCRIBE", id="s")
    await send(producer, "7")
    assert plain.bodies() == [b"7"]  # no exclusive consumer left: the others share the queue again


async def test_a_group_sticks_to_one_consumer_and_moves_when_it_leaves() -> None:
    broker = make_broker()
    a, b = await connected(broker), await connected(broker)
    for client in (a, b):
        await client.frame("SUBSCRIBE", destination="/queue/g", id="s")
    producer = await connected(broker)
    for i in range(4):
        await send(producer, f"x{i}", JMSXGroupID="X")
        await send(producer, f"y{i}", JMSXGroupID="Y")
        await send(producer, f"n{i}")
    got_a, got_b = a.messages(), b.messages()
    owner_of_x = got_a if any(f.body == b"x0" for f in got_a) else got_b
    other = got_b if owner_of_x is got_a else got_a
    assert [f.body for f in owner_of_x if f.body.startswith(b"x")] == [b"x0", b"x1", b"x2", b"x3"]
    assert [f.body for f in other if f.body.startswith(b"y")] == [b"y0", b"y1", b"y2", b"y3"]
    firsts = [f.body for f in got_a + got_b if f.headers.get("JMSXGroupFirstForConsumer") == "true"]
    assert sorted(firsts) == [b"x0", b"y0"]
    assert len(got_a) + len(got_b) == 12
    leaving, staying = (a, b) if owner_of_x is got_a else (b, a)
    leaving.lose()
    await send(producer, "x4", JMSXGroupID="X")
    (frame,) = staying.messages()
    assert frame.body == b"x4" and frame.headers["JMSXGroupFirstForConsumer"] == "true"


async def test_group_seq_minus_one_closes_the_group() -> None:
    broker = make_broker()
    a, b = await connected(broker), await connected(broker)
    for client in (a, b):
        await client.frame("SUBSCRIBE", destination="/queue/g", id="s")
    producer = await connected(broker)
    await send(producer, "1", JMSXGroupID="G", JMSXGroupSeq="1")
    await send(producer, "2", JMSXGroupID="G", JMSXGroupSeq="2")
    await send(producer, "end", JMSXGroupID="G", JMSXGroupSeq="-1")
    assert (a.bodies(), b.bodies()) == ([b"1", b"2", b"end"], [])
    queue = broker.destinations.queues["/queue/g"]
    assert queue.ownership is not None and "G" not in queue.ownership.owners
    await send(producer, "again", JMSXGroupID="G")  # a new owner is chosen: round robin says b
    assert (a.bodies(), b.bodies()) == ([], [b"again"])


async def test_seq_one_restarts_the_group_on_whoever_takes_it() -> None:
    broker = make_broker()
    a, b = await connected(broker), await connected(broker)
    for client in (a, b):
        await client.frame("SUBSCRIBE", destination="/queue/g", id="s")
    producer = await connected(broker)
    await send(producer, "1", JMSXGroupID="G")
    await send(producer, "restart", JMSXGroupID="G", JMSXGroupSeq="1")
    assert (a.bodies(), b.bodies()) == ([b"1"], [b"restart"])


async def test_a_busy_owner_holds_its_group_while_other_groups_go_on() -> None:
    broker = make_broker()
    a, b = await connected(broker), await connected(broker)
    for client in (a, b):
        await client.frame("SUBSCRIBE", destination="/queue/g", id="s", ack="client-individual",
                           activemq_prefetchSize="1")
    producer = await connected(broker)
    await send(producer, "x0", JMSXGroupID="X")  # to a, which is full now
    await send(producer, "x1", JMSXGroupID="X")  # waits for a
    await send(producer, "y0", JMSXGroupID="Y")  # b takes it, past x1
    (x0,) = a.messages()
    assert x0.body == b"x0" and b.bodies() == [b"y0"]
    await a.frame("ACK", id=x0.headers["ack"])
    assert a.bodies() == [b"x1"]


async def test_group_owners_are_bounded() -> None:
    broker = make_broker()
    consumer = await connected(broker)
    await consumer.frame("SUBSCRIBE", destination="/queue/g", id="s")
    producer = await connected(broker)
    for i in range(MAX_GROUPS + 50):
        await send(producer, "m", JMSXGroupID=f"g{i}")
    queue = broker.destinations.queues["/queue/g"]
    assert queue.ownership is not None and len(queue.ownership.owners) == MAX_GROUPS
    assert len(consumer.messages()) == MAX_GROUPS + 50
