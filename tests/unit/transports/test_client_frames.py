"""SUBSCRIBE and ACK/NACK frames per STOMP version and ActiveMQ header names."""

import pytest

from transports.client.subscription import ack_frame, subscribe_frame


def test_subscribe_frame_uses_activemq_headers():
    frame = subscribe_frame("sub-1", "/topic/t", ack="client", prefetch=10, selector="p > 4",
                            durable_name="d", headers={"x-custom": 1, "id": "spoof"})
    assert frame.command == "SUBSCRIBE"
    assert frame.headers == {"x-custom": "1", "id": "sub-1", "destination": "/topic/t", "ack": "client",
                             "activemq.prefetchSize": "10", "selector": "p > 4",
                             "activemq.subscriptionName": "d"}


def test_subscribe_frame_minimal_and_invalid():
    assert subscribe_frame("s", "/queue/q").headers == {"destination": "/queue/q", "id": "s", "ack": "auto"}
    with pytest.raises(ValueError, match="ack"):
        subscribe_frame("s", "/queue/q", ack="sometimes")
    with pytest.raises(ValueError, match="prefetch"):
        subscribe_frame("s", "/queue/q", prefetch=0)


MESSAGE = {"message-id": "m-7", "subscription": "sub-3", "ack": "a-7", "destination": "/queue/q"}


def test_ack_frame_by_version():
    assert ack_frame("ACK", MESSAGE, version="1.2", sub_id="sub-3").headers == {"id": "a-7"}
    assert ack_frame("NACK", MESSAGE, version="1.1", sub_id="x").headers == {"message-id": "m-7",
                                                                             "subscription": "sub-3"}
    assert ack_frame("ACK", MESSAGE, version="1.0", sub_id="x").headers == {"message-id": "m-7"}
    tx = ack_frame("ACK", MESSAGE, version="1.2", sub_id="sub-3", transaction="tx-1")
    assert tx.command == "ACK" and tx.headers == {"id": "a-7", "transaction": "tx-1"}


def test_ack_frame_12_without_ack_header_falls_back_to_message_id():
    headers = {"message-id": "m-1"}
    assert ack_frame("ACK", headers, version="1.2", sub_id="sub-1").headers == {"message-id": "m-1",
                                                                                "subscription": "sub-1"}
