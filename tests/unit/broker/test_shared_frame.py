"""A topic fan-out's copies are written from one shared encoding of the message (sharedframe.py):
each subscriber still gets exactly its own frame, for every STOMP version and ack mode, and the
copies that must differ (headers a version cannot carry, a temporary destination's local name)
are encoded on their own."""

from __future__ import annotations

from broker.engine.message import Message
from broker.engine.sharedframe import SharedFrame
from tests.unit.broker.memconn import Client, make_broker
from transports.stomp.frame import Frame


async def connected(broker, version: str = "1.2") -> Client:
    client = Client(broker)
    await client.connect(version)
    return client


async def test_each_version_and_ack_mode_gets_its_own_headers_on_the_shared_encoding() -> None:
    broker = make_broker()
    subscribers = [(await connected(broker, version), ack)
                   for version, ack in (("1.0", "auto"), ("1.1", "client"), ("1.2", "client-individual"),
                                        ("1.2", "auto"))]
    for n, (client, ack) in enumerate(subscribers):
        await client.frame("SUBSCRIBE", destination="/topic/shared", id=f"sub:{n}", ack=ack)
    producer = await connected(broker)
    await producer.frame("SEND", b"payload", destination="/topic/shared", colour="a:b", path="c\\d",
                         timestamp="1", priority="4")
    for n, (client, ack) in enumerate(subscribers):
        [frame] = client.messages()
        assert client.conn.encoded == 1  # the shared encoding, parsed back by the real parser
        expected = {"colour": "a:b", "path": "c\\d", "timestamp": "1", "priority": "4",
                    "destination": "/topic/shared", "message-id": frame.headers["message-id"],
                    "subscription": f"sub:{n}"}
        if client.conn.version == "1.2" and ack != "auto":
            expected["ack"] = acked = frame.headers["ack"]
        assert frame == Frame("MESSAGE", expected, b"payload")
    acker, _ = subscribers[2]  # the ack id in the shared frame's rendering is the session's own
    [ack_id] = acker.session.subscriptions["sub:2"].unacked
    assert ack_id == acked
    await acker.frame("ACK", id=ack_id)
    assert acker.session.subscriptions["sub:2"].unacked == {}


async def test_a_header_one_version_cannot_carry_is_encoded_on_its_own_for_that_version() -> None:
    broker = make_broker()
    old, new = await connected(broker, "1.0"), await connected(broker, "1.2")
    await old.frame("SUBSCRIBE", destination="/topic/nl", id="1")
    await new.frame("SUBSCRIBE", destination="/topic/nl", id="2")
    producer = await connected(broker)
    await producer.raw("SEND", {"destination": "/topic/nl", "note": "two\nlines"}, b"x")
    [frame_old], [frame_new] = old.messages(), new.messages()
    assert old.conn.encoded == 0 and frame_old.headers["note"] == "two\nlines"  # the transport flattens it
    assert new.conn.encoded == 1 and frame_new.headers["note"] == "two\nlines"


async def test_a_temporary_destination_is_named_as_each_connection_knows_it() -> None:
    broker = make_broker()
    requester, other = await connected(broker), await connected(broker)
    await requester.frame("SUBSCRIBE", destination="/temp-topic/answers", id="r")
    await requester.frame("SUBSCRIBE", destination="/topic/ask", id="q")
    await other.frame("SUBSCRIBE", destination="/topic/ask", id="q")
    await requester.frame("SEND", b"?", destination="/topic/ask", reply_to="/temp-topic/answers")
    [mine], [theirs] = requester.messages(), other.messages()
    assert mine.headers["reply-to"] == "/temp-topic/answers" and requester.conn.encoded == 0
    assert theirs.headers["reply-to"] != "/temp-topic/answers" and other.conn.encoded == 1


def test_a_copy_whose_headers_were_replaced_is_not_served_by_the_template() -> None:
    message = Message("ID:1", "/topic/t", {"h": "v"}, b"body")
    message.shared = SharedFrame(message)
    copy = message.copy()
    assert copy.shared is message.shared and copy.shared.template(copy, "1.2") is not None
    copy.headers = {**copy.headers, "JMSXGroupFirstForConsumer": "true"}  # as groups.py does
    assert copy.shared.template(copy, "1.2") is None
    assert message.shared.template(message, "1.2") is not None


def test_a_message_holding_a_subscriber_header_has_no_template() -> None:
    message = Message("ID:1", "/topic/t", {"subscription": "forged"}, b"body")
    assert SharedFrame(message).template(message, "1.2") is None
