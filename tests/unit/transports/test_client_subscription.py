"""A subscription's local queue: bounded, ends cleanly or with the connection's error."""

import asyncio

import pytest

from transports.client.errors import ConnectionLost
from transports.client.state import ConnectionState, StateListeners
from transports.client.subscription import Message, Subscription, subscribe_frame
from transports.stomp.frame import Frame


def _sub(bound: int = 3) -> Subscription:
    # No client: these tests never ack, so the subscription never reaches for one.
    return Subscription(None, "sub-1", subscribe_frame("sub-1", "/queue/q"), bound)  # type: ignore[arg-type]


def _msg(n: int, **headers: str) -> Frame:
    headers = {"message-id": f"m-{n}", "subscription": "sub-1", **headers}
    return Frame("MESSAGE", headers, f"body {n}".encode())


async def test_messages_then_clean_end():
    sub = _sub()
    await sub.deliver(_msg(1))
    await sub.deliver(_msg(2, redelivered="true"))
    sub.end(None)
    got = [m async for m in sub]
    assert [m.text for m in got] == ["body 1", "body 2"]
    assert [m.redelivered for m in got] == [False, True]
    assert got[0].message_id == "m-1" and got[0].destination is None
    assert await sub.get(timeout=0.01) is None


async def test_queued_messages_survive_a_lost_connection_then_it_raises():
    sub = _sub()
    await sub.deliver(_msg(1))
    lost = ConnectionLost("gone")
    sub.end(lost)
    sub.end(None)  # the first end wins
    assert (await sub.__anext__()).text == "body 1"
    with pytest.raises(ConnectionLost):
        await sub.__anext__()
    await sub.deliver(_msg(2))  # after the end, nothing is queued
    assert sub.pending == 0


async def test_end_wakes_every_waiting_consumer():
    sub = _sub()
    waiters = [asyncio.create_task(sub.get()) for _ in range(3)]
    await asyncio.sleep(0)
    sub.end(None)
    assert await asyncio.wait_for(asyncio.gather(*waiters), 2) == [None, None, None]


async def test_full_queue_makes_the_deliverer_wait():
    sub = _sub(bound=2)
    await sub.deliver(_msg(1))
    await sub.deliver(_msg(2))
    blocked = asyncio.create_task(sub.deliver(_msg(3)))
    await asyncio.sleep(0.02)
    assert not blocked.done() and sub.pending == 2  # back-pressure, not an unbounded buffer
    assert (await sub.get(1)).text == "body 1"
    await asyncio.wait_for(blocked, 2)
    assert sub.pending == 2


async def test_get_times_out():
    sub = _sub()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await sub.get(timeout=0.05) is None
    assert 0.04 <= loop.time() - started < 1.0


async def test_auto_ack_is_a_no_op_and_foreign_messages_refused():
    sub, other = _sub(), _sub()
    await sub.deliver(_msg(1))
    message = await sub.get(1)
    assert isinstance(message, Message)
    await message.ack()  # ack:auto: nothing to send, so no client is needed
    with pytest.raises(Exception, match="another subscription"):
        await other.settle(message, "ACK")


def test_state_listeners():
    states = StateListeners()
    seen: list[ConnectionState] = []
    unregister = states.add(seen.append)
    states.add(lambda s: 1 / 0)  # a broken callback is logged, not raised
    states.set(ConnectionState.CONNECTED)
    states.set(ConnectionState.CONNECTED)  # no change, no call
    unregister()
    states.set(ConnectionState.CLOSED)
    assert seen == [ConnectionState.CONNECTED]
    assert states.state is ConnectionState.CLOSED
