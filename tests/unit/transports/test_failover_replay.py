"""Replay planning and the bounded ledger, without sockets."""

from __future__ import annotations

import asyncio

import pytest

from transports.client.errors import ConnectionLost
from transports.client.ledger import PendingSends
from transports.client.replay import plan_replay, resubscribe_frame
from transports.client.subscription import Subscription, subscribe_frame
from transports.stomp.commands import PRODUCER_ID_HEADER
from transports.stomp.frame import Frame


def _send(seq: int) -> Frame:
    return Frame("SEND", {"destination": "/queue/a", PRODUCER_ID_HEADER: f"c:{seq}", "receipt": "r-9"}, b"x")


def _sub(sub_id: str, **kwargs) -> Subscription:
    frame = subscribe_frame(sub_id, "/topic/t", **kwargs)
    frame.headers["receipt"] = "r-1"  # what the old connection added
    return Subscription(None, sub_id, frame, 10)  # type: ignore[arg-type]


async def test_plan_resubscribes_live_subscriptions_then_resends_in_order():
    loop = asyncio.get_running_loop()
    pending = PendingSends()
    entries = [pending.add(_send(i), loop) for i in range(4)]
    entries[1].future.set_result(Frame("RECEIPT"))  # receipted, not yet discarded: not resent
    durable = _sub("sub-1", ack="client", selector="p > 3", durable_name="d1", prefetch=5)
    ended = _sub("sub-2")
    ended.end(None)
    plan = plan_replay([durable, ended], pending.in_order())
    assert [sub_id for sub_id, _ in plan.subscribes] == ["sub-1"]
    frame = plan.subscribes[0][1]
    assert frame.headers == {"destination": "/topic/t", "id": "sub-1", "ack": "client", "selector": "p > 3",
                             "activemq.prefetchSize": "5", "activemq.subscriptionName": "d1"}
    assert [e.producer_id for e in plan.resends] == ["c:0", "c:2", "c:3"]
    assert len(plan) == 4
    assert "receipt" in durable.frame.headers  # the original is left alone
    assert resubscribe_frame(durable.frame) is not durable.frame


async def test_full_ledger_blocks_the_sender_until_a_receipt_frees_room():
    loop = asyncio.get_running_loop()
    pending = PendingSends(limit=2)
    first = pending.add(_send(1), loop)
    pending.add(_send(2), loop)
    assert pending.full
    waiter = asyncio.create_task(pending.wait_for_room())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    pending.discard(first)
    await asyncio.wait_for(waiter, 1)
    assert not pending.full


async def test_wait_empty_returns_once_everything_settled_or_failed():
    loop = asyncio.get_running_loop()
    pending = PendingSends()
    awaited = pending.add(_send(1), loop)
    unawaited = pending.add(_send(2), loop, awaited=False)
    waiter = asyncio.create_task(pending.wait_empty())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    pending.discard(awaited)
    await asyncio.sleep(0.01)
    assert not waiter.done()
    lost = ConnectionLost("gave up")
    pending.fail_all(lost)
    await asyncio.wait_for(waiter, 1)
    assert unawaited.future.exception() is lost and not awaited.future.done()  # discarded, not failed


def test_ledger_limit_must_be_positive():
    with pytest.raises(ValueError):
        PendingSends(limit=0)


async def test_drop_stale_forgets_old_unacked_messages_but_keeps_auto_ones():
    client_sub = Subscription(None, "s", subscribe_frame("s", "/queue/q", ack="client-individual"), 10)  # type: ignore[arg-type]
    auto_sub = Subscription(None, "a", subscribe_frame("a", "/queue/q"), 10)  # type: ignore[arg-type]
    for sub in (client_sub, auto_sub):
        for n, generation in enumerate([1, 1, 2]):
            await sub.deliver(Frame("MESSAGE", {"message-id": str(n)}, b""), generation)
    assert client_sub.drop_stale(2) == 2
    assert [(await client_sub.get(0)).message_id] == ["2"]
    assert client_sub.pending == 0
    assert auto_sub.drop_stale(2) == 0 and auto_sub.pending == 3
