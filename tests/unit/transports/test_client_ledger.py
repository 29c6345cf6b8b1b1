"""The structures a reconnect replays: producer ids, pending sends, the subscription book."""

import asyncio

import pytest

from transports.client.errors import ClientError, ConnectionLost
from transports.client.ledger import (
    PRODUCER_ID_HEADER,
    PendingSends,
    ProducerIds,
    SubscriptionBook,
    merge_headers,
)
from transports.stomp.frame import Frame


def test_producer_ids_are_uuid_colon_sequence():
    ids = ProducerIds()
    first, second = ids.next(), ids.next()
    uuid, _, seq = first.partition(":")
    assert len(uuid) == 32 and seq == "1"
    assert second == f"{uuid}:2"
    assert ProducerIds().client_uuid != uuid
    assert ProducerIds("fixed").next() == "fixed:1"


def _send(seq: int) -> Frame:
    return Frame("SEND", {"destination": "/queue/a", PRODUCER_ID_HEADER: f"c:{seq}"}, b"x")


async def test_pending_sends_keep_send_order_and_discard():
    loop = asyncio.get_running_loop()
    pending = PendingSends()
    entries = [pending.add(_send(i), loop) for i in range(5)]
    pending.discard(entries[2])
    pending.discard(entries[2])  # idempotent
    assert [e.producer_id for e in pending.in_order()] == ["c:0", "c:1", "c:3", "c:4"]
    assert len(pending) == 4


async def test_pending_sends_bound_and_fail_all():
    loop = asyncio.get_running_loop()
    pending = PendingSends(limit=2)
    a, b = pending.add(_send(1), loop), pending.add(_send(2), loop)
    with pytest.raises(ClientError, match="more than 2"):
        pending.add(_send(3), loop)
    b.future.set_result(Frame("RECEIPT"))
    lost = ConnectionLost("gone")
    pending.fail_all(lost)
    assert a.future.exception() is lost
    assert b.future.result().command == "RECEIPT"  # a settled future is left alone
    assert len(pending) == 0


class _Sub:
    def __init__(self, sub_id: str) -> None:
        self.id = sub_id


def test_subscription_book():
    book = SubscriptionBook()
    ids = [book.new_id(), book.new_id()]
    assert ids == ["sub-1", "sub-2"]
    only = _Sub(ids[0])
    book.add(only)  # type: ignore[arg-type]
    assert book.get("sub-1") is only
    assert book.get(None) is only  # STOMP 1.0 broker without a `subscription` header
    assert book.get("sub-9") is None
    book.add(_Sub(ids[1]))  # type: ignore[arg-type]
    assert book.get(None) is None  # ambiguous: never guess
    book.remove("sub-1")
    book.remove("sub-1")
    assert [s.id for s in book] == ["sub-2"] and len(book) == 1


def test_merge_headers_ours_win_and_values_become_text():
    merged = merge_headers({"destination": "/queue/a"}, {"destination": "/queue/evil", "priority": 7})
    assert merged == {"priority": "7", "destination": "/queue/a"}
    assert merge_headers({"a": "1"}, None) == {"a": "1"}
