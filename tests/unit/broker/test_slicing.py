"""Dispatch, fan-out and selector scans in slices (broker/slicing.py), without sockets.

A tiny `work_slice_ms` makes every long piece of work span many turns of the loop. The frames go
straight to `Session.handle`, so what is delivered before the slicer's later turns can be seen;
the tests then check that slicing changed nothing a client can see but the timing: order,
priorities, prefetch, receipts after delivery, selectors.
"""

from __future__ import annotations

import asyncio

from tests.unit.broker.memconn import Client, make_broker
from transports.stomp.frame import Frame

TINY = 0.01  # ms: a slice ends after a handful of deliveries


async def connected(broker) -> Client:  # type: ignore[no-untyped-def]
    client = Client(broker)
    await client.connect()
    return client


async def handle(client: Client, command: str, **headers: str) -> None:
    """The frame alone, without waiting for the work it leaves to later turns."""
    names = {k: k.replace("activemq_", "activemq.").replace("_", "-") for k in headers}
    await client.session.handle(Frame(command, {names[k]: v for k, v in headers.items()}, b""))


async def finish(broker, ticks: list[int] | None = None) -> None:  # type: ignore[no-untyped-def]
    """Let the slicer run to the end; count the loop turns other tasks got meanwhile."""

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0)
            if ticks is not None:
                ticks[0] += 1

    task = asyncio.ensure_future(ticker())
    await asyncio.wait_for(broker.slicer.idle(), 10)
    task.cancel()


async def fill(broker, destination: str, n: int, **headers: str) -> None:  # type: ignore[no-untyped-def]
    producer = await connected(broker)
    for i in range(n):
        await producer.frame("SEND", str(i).encode(), destination=destination, **headers)


async def test_a_backlog_drains_over_many_turns_in_priority_order() -> None:
    broker = make_broker(work_slice_ms=TINY)
    producer = await connected(broker)
    for i in range(2000):
        await producer.frame("SEND", b"%d" % i, destination="/queue/b", priority=str(i % 10))
    consumer = await connected(broker)
    await handle(consumer, "SUBSCRIBE", destination="/queue/b", id="s")
    first = len(consumer.messages())
    assert 0 < first < 2000  # one slice went out with the SUBSCRIBE, the rest later
    ticks = [0]
    await finish(broker, ticks)
    assert ticks[0] > 10  # the loop ran other work between the slices
    assert broker.stats()["destinations"]["/queue/b"]["depth"] == 0
    assert broker.stats()["destinations"]["/queue/b"]["dequeued"] == 2000


async def test_order_and_priorities_are_those_of_one_dispatch() -> None:
    broker = make_broker(work_slice_ms=TINY)
    producer = await connected(broker)
    for i in range(600):
        await producer.frame("SEND", b"%d" % i, destination="/queue/o", priority=str(i % 3 * 4))
    consumer = await connected(broker)
    await handle(consumer, "SUBSCRIBE", destination="/queue/o", id="s")
    await handle(producer, "SEND", destination="/queue/o", priority="8")  # arrives mid-drain
    await finish(broker)
    bodies = [f.body for f in consumer.conn.take("MESSAGE")]
    delivered_first = bodies[: bodies.index(b"")]  # the one sent mid-drain has an empty body
    expected = [b"%d" % i for p in (8, 4, 0) for i in range(600) if i % 3 * 4 == p]
    assert bodies == [*delivered_first, b"", *expected[len(delivered_first):]]
    assert all(b in expected[: len(delivered_first)] for b in delivered_first)


async def test_prefetch_holds_across_slices_and_acks_resume_the_drain() -> None:
    broker = make_broker(work_slice_ms=TINY)
    await fill(broker, "/queue/p", 1000)
    consumer = await connected(broker)
    await handle(consumer, "SUBSCRIBE", destination="/queue/p", id="s", ack="client",
                 activemq_prefetchSize="100")
    await finish(broker)
    frames = consumer.messages()
    assert [f.body for f in frames] == [b"%d" % i for i in range(100)]
    await handle(consumer, "ACK", id=frames[-1].headers["ack"])  # cumulative: all 100
    await finish(broker)
    assert [f.body for f in consumer.messages()] == [b"%d" % i for i in range(100, 200)]


async def test_fan_out_in_slices_receipts_after_every_subscriber_has_the_message() -> None:
    broker = make_broker(work_slice_ms=TINY)
    subscribers = [await connected(broker) for _ in range(3)]
    for client in subscribers:
        for i in range(100):
            await client.frame("SUBSCRIBE", destination="/topic/f", id=str(i))
    producer = await connected(broker)
    for n in range(5):
        await handle(producer, "SEND", destination="/topic/f", receipt=f"t{n}")
    await handle(producer, "SEND", destination="/queue/q", receipt="q")
    assert producer.conn.take("RECEIPT") == []  # the fan-out is not done, and the rest waits behind it
    assert sum(len(c.conn.sent) for c in subscribers) < 300 * 5
    await finish(broker)
    await producer.settle()
    receipts = [f.headers["receipt-id"] for f in producer.conn.take("RECEIPT")]
    assert receipts == ["t0", "t1", "t2", "t3", "t4", "q"]
    for client in subscribers:
        frames = client.messages()
        assert len(frames) == 500
        for i in range(100):  # each subscription got the five in order
            mine = [f.headers["message-id"] for f in frames if f.headers["subscription"] == str(i)]
            assert len(mine) == 5 and mine == sorted(mine, key=lambda m: int(m.rsplit("-", 1)[1]))


async def test_subscribers_that_leave_during_a_fan_out_get_nothing_more() -> None:
    broker = make_broker(work_slice_ms=TINY)
    stays, leaves = await connected(broker), await connected(broker)
    for i in range(200):
        await stays.frame("SUBSCRIBE", destination="/topic/l", id=str(i))
        await leaves.frame("SUBSCRIBE", destination="/topic/l", id=str(i))
    producer = await connected(broker)
    await handle(producer, "SEND", destination="/topic/l", receipt="r")
    leaves.lose()  # while the fan-out is under way
    before = len(leaves.messages())
    await finish(broker)
    await producer.settle()
    assert len(stays.messages()) == 200 and leaves.messages() == [] and before < 200
    assert [f.headers["receipt-id"] for f in producer.conn.take("RECEIPT")] == ["r"]


class Counting(str):
    """A header value that counts how often a selector compares it."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        Counting.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


async def test_a_selector_scan_is_sliced_and_goes_on_where_it_stopped() -> None:
    broker = make_broker(work_slice_ms=TINY)
    producer = await connected(broker)
    for i in range(3000):
        await producer.raw("SEND", {"destination": "/queue/s", "colour": Counting("blue")}, b"%d" % i)
    await producer.raw("SEND", {"destination": "/queue/s", "colour": Counting("red")}, b"red")
    consumer = await connected(broker)
    Counting.compared = 0
    await handle(consumer, "SUBSCRIBE", destination="/queue/s", id="s", selector="colour = 'red'")
    assert consumer.messages() == []  # the scan is spread over later turns
    await finish(broker)
    assert [f.body for f in consumer.messages()] == [b"red"]
    assert Counting.compared == 3001  # every message evaluated once: no slice started over


class Unprintable(str):
    """A header value the selector cannot read (stands for any fault while evaluating)."""

    def __str__(self) -> str:
        raise RuntimeError("cannot be read")


async def test_an_evaluation_fault_affects_only_the_selector_that_hit_it() -> None:
    broker = make_broker()
    picky, plain, queued, other = [await connected(broker) for _ in range(4)]
    await picky.frame("SUBSCRIBE", destination="/topic/t", id="1", selector="name LIKE 'w%'")
    await plain.frame("SUBSCRIBE", destination="/topic/t", id="1")
    await queued.frame("SUBSCRIBE", destination="/queue/t", id="1", selector="name LIKE 'w%'")
    await other.frame("SUBSCRIBE", destination="/queue/t", id="1")
    producer = await connected(broker)
    for destination in ("/topic/t", "/queue/t"):
        headers = {"destination": destination, "name": Unprintable("widget"), "receipt": "r"}
        await producer.raw("SEND", headers)
    await producer.settle()
    assert len(producer.conn.take("RECEIPT")) == 2 and producer.conn.errors() == []  # the sender
    assert picky.messages() == [] and queued.messages() == []  # no match for the faulting selectors
    assert len(plain.messages()) == 1 and len(other.messages()) == 1  # everyone else served
    await producer.frame("SEND", destination="/topic/t", name="widget")
    assert len(picky.messages()) == 1  # and the faulting selector keeps working

