"""Queue browsing over STOMP with stomp.py: SUBSCRIBE with `browser:true` gets the waiting messages
without taking them, then ActiveMQ's end-of-browse MESSAGE (`browser:end`, `message-id:0`, no body)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.server import BrokerThread, running_broker
from tests.integration.test_stomp_messaging import Peer

BROWSER = {"browser": "true"}


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    with running_broker() as b:
        yield b


def fill(peer: Peer, destination: str, bodies: list[str]) -> None:
    for i, body in enumerate(bodies):
        peer.conn.send(destination, body, headers={"persistent": "true"}, receipt=f"r{i}")
        peer.receipt(f"r{i}")


def browse(peer: Peer, destination: str, sub_id: str, count: int,
           timeout: float = 10.0) -> tuple[list, object]:
    peer.conn.subscribe(destination, id=sub_id, ack="client-individual", headers=BROWSER)
    frames = [peer.get(timeout) for _ in range(count)]
    return frames, peer.get(timeout)


def test_browse_then_end_marker_and_nothing_taken(broker: BrokerThread) -> None:
    producer, browser, consumer = Peer(broker.port), Peer(broker.port), None
    try:
        fill(producer, "/queue/br", [f"b{i}" for i in range(5)])
        frames, end = browse(browser, "/queue/br", "look", 5)
        assert [f.body for f in frames] == [f"b{i}" for i in range(5)]
        assert all(f.headers["subscription"] == "look" and "ack" not in f.headers for f in frames)
        assert end.headers["browser"] == "end" and end.headers["message-id"] == "0"
        assert end.headers["subscription"] == "look" and end.headers["destination"] == "/queue/br"
        assert end.body == ""
        fill(producer, "/queue/br", ["later"])
        assert browser.nothing(0.5)  # a browse is a snapshot: later messages are not browsed
        again, _ = browse(browser, "/queue/br", "look2", 6)  # the first browse took nothing
        assert [f.body for f in again] == [f"b{i}" for i in range(5)] + ["later"]
        consumer = Peer(broker.port)
        consumer.conn.subscribe("/queue/br", id="c", ack="auto")
        assert consumer.bodies(6) == [f"b{i}" for i in range(5)] + ["later"]
        browser.conn.unsubscribe("look", headers={"receipt": "u"})
        browser.receipt("u")
    finally:
        for peer in (producer, browser, consumer):
            if peer is not None:
                peer.close()


def test_browsing_an_unknown_queue_ends_at_once_and_a_topic_is_refused(broker: BrokerThread) -> None:
    peer = Peer(broker.port)
    try:
        _, end = browse(peer, "/queue/never", "n", 0)
        assert end.headers["browser"] == "end" and end.body == ""
        peer.conn.subscribe("/topic/t", id="t", headers=BROWSER)
        assert peer.listener.error_event.wait(5)
        assert peer.listener.errors == ["invalid browser subscription"]
    finally:
        peer.close()


def test_a_queue_larger_than_the_socket_buffer_is_browsed_whole(broker: BrokerThread) -> None:
    producer, browser = Peer(broker.port), Peer(broker.port)
    try:
        body = "x" * 20_000
        for i in range(600):  # 12 MB: the browse goes out in several writable phases
            producer.conn.send("/queue/big", f"{i} {body}", headers={"persistent": "false"})
        fill(producer, "/queue/big", ["last"])
        frames, end = browse(browser, "/queue/big", "big", 601, timeout=30.0)
        assert [f.body.split(" ")[0] for f in frames[:600]] == [str(i) for i in range(600)]
        assert frames[600].body == "last" and end.headers["browser"] == "end"
    finally:
        producer.close()
        browser.close()


def test_a_browser_with_a_selector_sees_only_what_it_matches(broker: BrokerThread) -> None:
    producer, browser = Peer(broker.port), Peer(broker.port)
    try:
        for i in range(6):
            producer.conn.send("/queue/sel", f"s{i}", headers={"colour": "red" if i % 2 else "blue"},
                               receipt=f"r{i}")
            producer.receipt(f"r{i}")
        browser.conn.subscribe("/queue/sel", id="red", headers={**BROWSER, "selector": "colour = 'red'"})
        frames = [browser.get() for _ in range(4)]
        assert [f.body for f in frames[:3]] == ["s1", "s3", "s5"] and frames[3].headers["browser"] == "end"
    finally:
        producer.close()
        browser.close()


def test_acks_on_a_browser_subscription_change_nothing(broker: BrokerThread) -> None:
    producer, browser = Peer(broker.port), Peer(broker.port, version="1.1")
    try:
        fill(producer, "/queue/ack", ["a0"])
        frames, _ = browse(browser, "/queue/ack", "b", 1)
        browser.conn.ack(frames[0].headers["message-id"], "b", receipt="acked")
        browser.receipt("acked")
        again, _ = browse(browser, "/queue/ack", "b2", 1)
        assert [f.body for f in again] == ["a0"] and browser.listener.errors == []
    finally:
        producer.close()
        browser.close()
