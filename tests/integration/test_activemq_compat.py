"""ActiveMQ behaviour STOMP users rely on (docs/activemq-compat.md), against a real broker process.

One `python -m broker start` process serves the whole module (starting one costs a second or more
on a busy machine); each test uses destinations of its own. Clients are stomp.py, and a raw socket
where a behaviour is about bytes stomp.py never sends.
"""

from __future__ import annotations

import contextlib
import queue
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp

from tests.helpers.cluster import free_port
from tests.helpers.daemon import Daemon, daemon
from tests.helpers.rawstomp import RawStomp
from tests.helpers.stomppy import Listener

HOST = "127.0.0.2"
WAIT = 10.0  # generous: several helpers run tests on two cores at once
START_FLAGS = ("--lock-acquire-interval", "0.1", "--lock-keepalive-period", "0.3", "--lock-timeout", "2")


class Broker:
    def __init__(self, process: Daemon, port: int, metrics_port: int) -> None:
        self.process = process
        self.port = port
        self.metrics_port = metrics_port

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{HOST}:{self.metrics_port}/metrics", timeout=WAIT) as answer:
            return answer.read().decode()

    def depth(self, destination: str) -> float | None:
        """The batonmq_destination_depth gauge of `destination` (None: no such series)."""
        for line in self.metrics().splitlines():
            if line.startswith(f'batonmq_destination_depth{{destination="{destination}"}}'):
                return float(line.rpartition(" ")[2])
        return None


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    data: Path = tmp_path_factory.mktemp("amq")
    port, metrics_port = free_port((HOST,)), free_port((HOST,))
    args = ["--data", str(data), "--connector", f"tcp://{HOST}:{port}", "--metrics-host", HOST,
            "--metrics-port", str(metrics_port), *START_FLAGS]
    with daemon(args) as process:
        process.wait_for(r"role recovering -> master", timeout=60)
        process.wait_for(r"STOMP connector listening", timeout=30)
        yield Broker(process, port, metrics_port)


class Peer:
    """A stomp.py connection (1.2 unless asked) and what it received."""

    def __init__(self, port: int, version: str = "1.2") -> None:
        if version == "1.0":
            self.conn: Any = stomp.Connection10([(HOST, port)])
        else:
            cls = stomp.Connection11 if version == "1.1" else stomp.Connection12
            self.conn = cls([(HOST, port)], heartbeats=(0, 0))
        self.listener = Listener()
        self.conn.set_listener("l", self.listener)
        self.conn.connect(wait=True)
        self._receipts = 0

    def connected_frame(self) -> Any:
        return self.listener.connected.get(timeout=WAIT)

    def send(self, destination: str, body: str, **headers: str) -> str:
        """SEND and wait for its RECEIPT (an ERROR instead fails the test)."""
        receipt = self._next_receipt()
        self.conn.send(destination, body, headers={**headers, "receipt": receipt})
        self.wait_receipt(receipt)
        return receipt

    def subscribe(self, destination: str, sub_id: str, ack: str = "auto", **headers: str) -> None:
        receipt = self._next_receipt()
        self.conn.subscribe(destination, id=sub_id, ack=ack, headers={**headers, "receipt": receipt})
        self.wait_receipt(receipt)

    def unsubscribe(self, sub_id: str) -> None:
        receipt = self._next_receipt()
        self.conn.unsubscribe(sub_id, headers={"receipt": receipt})
        self.wait_receipt(receipt)

    def wait_receipt(self, receipt: str) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                assert self.listener.receipts.get(timeout=0.02) == receipt
                return
            if not self.listener.errors.empty():
                error = self.listener.errors.get()
                raise AssertionError(f"ERROR instead of RECEIPT {receipt}: {error.headers}")
        raise AssertionError(f"no RECEIPT {receipt}")

    def error(self) -> Any:
        return self.listener.errors.get(timeout=WAIT)

    def get(self, timeout: float = WAIT) -> Any:
        return self.listener.messages.get(timeout=timeout)

    def bodies(self, count: int) -> list[str]:
        return [self.get().body for _ in range(count)]

    def nothing(self, wait: float = 0.5) -> bool:
        try:
            self.listener.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def _next_receipt(self) -> str:
        self._receipts += 1
        return f"r{self._receipts}"

    def close(self) -> None:
        if self.conn.is_connected():
            with contextlib.suppress(Exception):
                self.conn.disconnect(receipt="bye")
        deadline = time.monotonic() + WAIT
        while self.conn.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture
def peers(broker: Broker) -> Iterator[Any]:
    made: list[Peer] = []

    def make(version: str = "1.2") -> Peer:
        peer = Peer(broker.port, version)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def raw(broker: Broker) -> RawStomp:
    return RawStomp(HOST, broker.port, timeout=WAIT)


# -- connecting and framing ----------------------------------------------------------------------------


def test_stomp_1_0_connected_says_heart_beat_0_0(peers) -> None:
    peer = peers("1.0")
    frame = peer.connected_frame()
    assert frame.headers["version"] == "1.0" and frame.headers["heart-beat"] == "0,0"


def test_nul_and_eol_before_a_command_are_skipped_as_heart_beats(broker: Broker, peers) -> None:
    consumer = peers()
    consumer.subscribe("/queue/compat.nul", "s")
    with raw(broker) as client:
        client.sock.sendall(b"\0\n\0")  # before CONNECT too
        assert client.connect("1.0").startswith("CONNECTED")
        for gap in (b"\0", b"\n\0\r\n", b"\0\0\0\n"):
            client.sock.sendall(gap + b"SEND\ndestination:/queue/compat.nul\n\n" + gap.hex().encode() + b"\0")
        client.sock.sendall(b"\0SEND\ndestination:/queue/compat.nul\nreceipt:done\n\nlast\0\n")
        assert client.read_frame(WAIT).startswith("RECEIPT")
    assert consumer.bodies(4) == ["00", "0a000d0a", "0000000a", "last"]


def test_a_16_mib_message_is_taken_as_activemq_takes_it(peers) -> None:
    # The default max_frame_size is ActiveMQ's 100 MiB body bound (it was 10 MiB: this was refused).
    consumer, producer = peers(), peers()
    consumer.subscribe("/queue/compat.big", "s")
    body = "x" * (16 * 1024 * 1024)
    producer.send("/queue/compat.big", body)
    assert consumer.get(timeout=60).body == body


def test_a_duplicate_subscription_id_gets_an_error_and_the_connection_goes_on(peers) -> None:
    client, producer = peers(), peers()
    client.subscribe("/queue/compat.dup.a", "s")
    client.conn.subscribe("/queue/compat.dup.b", id="s", ack="auto", headers={"receipt": "dup"})
    error = client.error()
    assert error.headers["message"] == "duplicate subscription" and error.headers["receipt-id"] == "dup"
    assert client.conn.is_connected()
    producer.send("/queue/compat.dup.a", "still served")
    assert client.get().body == "still served"
    client.send("/queue/compat.dup.a", "and it still sends")
    assert client.get().body == "and it still sends"


# -- destinations --------------------------------------------------------------------------------------


def test_a_name_without_a_prefix_is_the_queue_of_that_name(broker: Broker, peers) -> None:
    consumer, producer = peers(), peers()
    producer.send("compat.plain", "one", persistent="true")
    producer.send("/queue/compat.plain", "two")
    assert broker.depth("/queue/compat.plain") == 2  # one queue, named as ActiveMQ names it
    assert broker.depth("compat.plain") is None
    consumer.subscribe("compat.plain", "s", ack="client-individual")
    first, second = consumer.get(), consumer.get()
    assert [first.body, second.body] == ["one", "two"]
    assert first.headers["destination"] == "/queue/compat.plain"  # as ActiveMQ's MESSAGE says it
    for frame in (first, second):
        consumer.conn.ack(frame.headers["ack"])
    deadline = time.monotonic() + WAIT
    while broker.depth("/queue/compat.plain") != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert broker.depth("/queue/compat.plain") == 0


# -- consumers -----------------------------------------------------------------------------------------


def test_an_exclusive_consumer_gets_all_and_the_next_takes_over_when_it_leaves(peers) -> None:
    first, second, plain, producer = peers(), peers(), peers(), peers()
    first.subscribe("/queue/compat.excl", "s", ack="client-individual", **{"activemq.exclusive": "true"})
    second.subscribe("/queue/compat.excl", "s", **{"activemq.exclusive": "true"})
    plain.subscribe("/queue/compat.excl", "s")
    for i in range(5):
        producer.send("/queue/compat.excl", f"m{i}")
    assert first.bodies(5) == [f"m{i}" for i in range(5)]
    assert second.nothing() and plain.nothing()
    first.close()  # nothing acked: all five go to the next exclusive consumer, flagged redelivered
    frames = [second.get() for _ in range(5)]
    assert [f.body for f in frames] == [f"m{i}" for i in range(5)]
    assert all(f.headers.get("redelivered") == "true" for f in frames)
    producer.send("/queue/compat.excl", "m5")
    assert second.get().body == "m5" and plain.nothing()


def test_message_groups_stick_to_a_consumer_and_move_when_it_leaves(peers) -> None:
    a, b, producer = peers(), peers(), peers()
    a.subscribe("/queue/compat.groups", "s")
    b.subscribe("/queue/compat.groups", "s")
    for i in range(3):
        for group in ("red", "blue"):
            producer.send("/queue/compat.groups", f"{group}{i}", JMSXGroupID=group)
    got = {"a": a.bodies(3), "b": b.bodies(3)}
    assert sorted(got.values()) == [["blue0", "blue1", "blue2"], ["red0", "red1", "red2"]]
    red_owner, other = (a, b) if got["a"][0].startswith("red") else (b, a)
    red_owner.close()
    producer.send("/queue/compat.groups", "red3", JMSXGroupID="red")
    frame = other.get()
    assert frame.body == "red3" and frame.headers["JMSXGroupFirstForConsumer"] == "true"
    # JMSXGroupSeq -1 closes the group: the next red message chooses its owner afresh.
    producer.send("/queue/compat.groups", "red-end", JMSXGroupID="red", JMSXGroupSeq="-1")
    assert other.get().body == "red-end"
    producer.send("/queue/compat.groups", "red-new", JMSXGroupID="red")
    frame = other.get()
    assert frame.body == "red-new" and frame.headers["JMSXGroupFirstForConsumer"] == "true"  # a new owner


def test_a_slow_topic_subscriber_over_its_pending_limit_loses_the_oldest(peers) -> None:
    slow, fast, producer = peers(), peers(), peers()
    slow.subscribe("/topic/compat.prices", "s", ack="client-individual",
                   **{"activemq.prefetchSize": "1", "activemq.maximumPendingMessageLimit": "2"})
    fast.subscribe("/topic/compat.prices", "s")
    for i in range(10):
        producer.send("/topic/compat.prices", f"p{i}")
    assert fast.bodies(10) == [f"p{i}" for i in range(10)]
    received = []
    for _ in range(3):  # p0 was sent at once; of p1..p9 only the two newest waited for room
        frame = slow.get()
        received.append(frame.body)
        slow.conn.ack(frame.headers["ack"])
    assert received == ["p0", "p8", "p9"] and slow.nothing()


# -- temporary destinations ----------------------------------------------------------------------------


def test_request_reply_over_a_temporary_queue_that_ends_with_its_connection(broker: Broker, peers) -> None:
    requester, service = peers(), peers()
    service.subscribe("/queue/compat.service", "s")
    requester.subscribe("/temp-queue/replies", "r")
    requester.send("/queue/compat.service", "what time is it?", **{"reply-to": "/temp-queue/replies"})
    request = service.get()
    reply_to = request.headers["reply-to"]
    assert reply_to.startswith("/remote-temp-queue/ID:")  # ActiveMQ's name for another's temp queue
    service.send(reply_to, "noon", persistent="true")
    answer = requester.get()
    assert answer.body == "noon" and answer.headers["destination"] == "/temp-queue/replies"
    assert broker.depth(reply_to) == 0
    service.send(reply_to, "left waiting")  # nobody reads it: it goes with the queue
    assert broker.depth(reply_to) is not None
    requester.unsubscribe("r")
    requester.close()
    deadline = time.monotonic() + WAIT
    while broker.depth(reply_to) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert broker.depth(reply_to) is None  # deleted with its connection, its message dropped
    receipt = "late"
    service.conn.send(reply_to, "too late", headers={"receipt": receipt})
    error = service.error()
    assert error.headers["message"] == "temporary destination gone" and error.headers["receipt-id"] == receipt
    assert service.conn.is_connected()  # an ERROR, not the end of the service's connection


def test_a_temporary_topic_is_the_connections_own(peers) -> None:
    owner, other, publisher = peers(), peers(), peers()
    owner.subscribe("/temp-topic/ticks", "t")
    owner.send("/queue/compat.announce", "here", **{"reply-to": "/temp-topic/ticks"})
    other.subscribe("/queue/compat.announce", "a")
    remote = other.get().headers["reply-to"]
    assert remote.startswith("/remote-temp-topic/ID:")
    other.conn.subscribe(remote, id="steal", ack="auto", headers={"receipt": "steal"})
    assert other.error().headers["message"] == "temporary destination of another connection"
    # Another connection's /temp-topic/ticks is a topic of its own.
    other.subscribe("/temp-topic/ticks", "mine")
    publisher.send(remote, "tick")
    assert owner.get().body == "tick" and other.nothing()
