"""Temporary destinations (broker/engine/tempdest.py) through real sessions: scope, reply-to, end."""

from __future__ import annotations

from pathlib import Path

from broker.engine.destinations import REMOTE_TEMP_QUEUE, REMOTE_TEMP_TOPIC
from tests.unit.broker.memconn import Client, make_broker
from tests.unit.broker.test_persistence import open_broker, reopen, shutdown


async def connected(broker) -> Client:  # type: ignore[no-untyped-def]
    client = Client(broker)
    await client.connect("1.2")
    return client


async def test_request_reply_through_a_temporary_queue() -> None:
    broker = make_broker()
    requester, service = await connected(broker), await connected(broker)
    await service.frame("SUBSCRIBE", destination="/queue/service", id="s")
    await requester.frame("SUBSCRIBE", destination="/temp-queue/answers", id="r")
    await requester.frame("SEND", body=b"question", destination="/queue/service",
                          reply_to="/temp-queue/answers", persistent="true")
    (request,) = service.messages()
    reply_to = request.headers["reply-to"]
    assert reply_to.startswith(REMOTE_TEMP_QUEUE) and requester.session.id in reply_to
    await service.frame("SEND", body=b"answer", destination=reply_to, receipt="r")
    assert [f.headers["receipt-id"] for f in service.conn.take("RECEIPT")] == ["r"]
    (answer,) = requester.messages()
    assert answer.body == b"answer" and answer.headers["destination"] == "/temp-queue/answers"


async def test_a_reply_to_naming_no_temporary_destination_is_passed_on_as_sent() -> None:
    broker = make_broker()
    requester, service = await connected(broker), await connected(broker)
    await service.frame("SUBSCRIBE", destination="/queue/service", id="s")
    for reply_to in ("/temp-queue/", "/queue/answers", "plain"):
        await requester.frame("SEND", body=b"q", destination="/queue/service", reply_to=reply_to)
    assert [f.headers["reply-to"] for f in service.messages()] == ["/temp-queue/", "/queue/answers", "plain"]
    assert not requester.conn.closed and broker.temps.owners == {}


async def test_the_same_name_on_two_connections_is_two_destinations() -> None:
    broker = make_broker()
    a, b = await connected(broker), await connected(broker)
    for client in (a, b):
        await client.frame("SUBSCRIBE", destination="/temp-queue/mine", id="s")
    await a.frame("SEND", body=b"for a", destination="/temp-queue/mine")
    assert a.bodies() == [b"for a"] and b.bodies() == []
    assert sum(name.startswith(REMOTE_TEMP_QUEUE) for name in broker.destinations.queues) == 2


async def test_only_the_creator_may_subscribe_and_others_get_an_error_without_closing() -> None:
    broker = make_broker()
    owner, other = await connected(broker), await connected(broker)
    await owner.frame("SEND", body=b"x", destination="/queue/q", reply_to="/temp-queue/t")
    (remote,) = [n for n in broker.destinations.queues if n.startswith(REMOTE_TEMP_QUEUE)]
    await other.frame("SUBSCRIBE", destination=remote, id="s", receipt="1")
    assert other.conn.errors() == ["temporary destination of another connection"]
    assert not other.conn.closed


async def test_a_temporary_queue_ends_with_its_connection_and_its_messages_with_it() -> None:
    broker = make_broker()
    owner, sender = await connected(broker), await connected(broker)
    await owner.frame("SEND", body=b"x", destination="/queue/q", reply_to="/temp-queue/t", persistent="true")
    (remote,) = [n for n in broker.destinations.queues if n.startswith(REMOTE_TEMP_QUEUE)]
    await sender.frame("SEND", body=b"waits", destination=remote, persistent="true")
    assert broker.destinations.queues[remote].depth == 1
    owner.lose()
    assert remote not in broker.destinations.queues and remote not in broker.temps.owners
    await sender.frame("SEND", body=b"too late", destination=remote, receipt="late")
    error = sender.conn.take("ERROR")[0]
    assert error.headers["message"] == "temporary destination gone" and error.headers["receipt-id"] == "late"
    assert not sender.conn.closed


async def test_temporary_topics_fan_out_to_their_creator_and_end_with_it() -> None:
    broker = make_broker()
    owner, publisher = await connected(broker), await connected(broker)
    await owner.frame("SUBSCRIBE", destination="/temp-topic/events", id="s")
    (remote,) = [n for n in broker.destinations.topics if n.startswith(REMOTE_TEMP_TOPIC)]
    await publisher.frame("SEND", body=b"e1", destination=remote)
    (frame,) = owner.messages()
    assert frame.body == b"e1" and frame.headers["destination"] == "/temp-topic/events"
    await owner.frame("DISCONNECT", receipt="bye")
    assert remote not in broker.destinations.topics


async def test_temporary_destinations_are_never_stored_nor_collected(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    try:
        owner = await connected(broker)
        await owner.frame("SEND", body=b"x", destination="/temp-queue/t", persistent="true", receipt="1")
        await owner.frame("SEND", body=b"y", destination="/queue/kept", persistent="true", receipt="2")
        await owner.settle()
        assert [f.headers["receipt-id"] for f in owner.conn.take("RECEIPT")] == ["1", "2"]
        (remote,) = [n for n in broker.destinations.queues if n.startswith(REMOTE_TEMP_QUEUE)]
        assert not broker.destinations.queues[remote].messages()[0].stored
        assert await broker.destinations.collect(0.0, lambda: 1e9) == 0
        assert await broker.destinations.collect(0.0, lambda: 2e9) == 0
        assert remote in broker.destinations.queues
    finally:
        await shutdown(broker, store)
    recovered = await reopen(tmp_path)
    assert list(recovered.queues) == ["/queue/kept"]  # the persistent SEND to the temp queue: not stored


async def test_a_durable_subscription_to_a_temporary_topic_is_refused() -> None:
    broker = make_broker()
    client = Client(broker)
    await client.connect("1.2", client_id="c")
    await client.frame("SUBSCRIBE", destination="/temp-topic/x", id="s", activemq_subscriptionName="d")
    assert client.conn.errors() == ["durable subscription to a temporary topic"]
