"""A real broker on 127.0.0.1 (free port) driven by stomp.py: messaging semantics over TCP."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import pytest
import stomp

from config.model import Limits
from tests.helpers.server import HOST, BrokerThread, running_broker

WAIT = 20.0  # generous: only a failing test waits this long, and CI machines are slow


class Listener(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.receipts: queue.Queue = queue.Queue()
        self.errors: list[str] = []
        self.error_event = threading.Event()

    def on_message(self, frame) -> None:
        self.messages.put(frame)

    def on_receipt(self, frame) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_error(self, frame) -> None:
        self.errors.append(frame.headers.get("message", ""))
        self.error_event.set()


class Peer:
    """A stomp.py connection plus its listener."""

    def __init__(self, port: int, version: str = "1.2", **connect_headers: str) -> None:
        cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}[version]
        self.conn = cls([(HOST, port)], heartbeats=(0, 0)) if version != "1.0" else cls([(HOST, port)])
        self.listener = Listener()
        self.conn.set_listener("l", self.listener)
        self.conn.connect(wait=True, headers=connect_headers)

    def get(self, timeout: float = WAIT):
        return self.listener.messages.get(timeout=timeout)

    def bodies(self, n: int, timeout: float = WAIT) -> list[str]:
        return [self.get(timeout).body for _ in range(n)]

    def nothing(self, wait: float = 0.3) -> bool:
        try:
            self.listener.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def receipt(self, receipt: str, timeout: float = WAIT) -> None:
        got = self.listener.receipts.get(timeout=timeout)
        assert got == receipt

    def close(self) -> None:
        """DISCONNECT and wait for its RECEIPT (stomp.py does not wait): the broker has then released
        this session's subscriptions and client-id."""
        if self.conn.is_connected():
            self.conn.disconnect()
        deadline = time.monotonic() + WAIT
        while self.conn.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture(params=["asyncio", "uvloop"])
def broker(request: pytest.FixtureRequest) -> Iterator[BrokerThread]:
    with running_broker(limits=Limits(max_redeliveries=2), uvloop=request.param == "uvloop") as b:
        yield b


@pytest.fixture
def peers(broker: BrokerThread) -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


def peer(broker: BrokerThread, peers: list[Peer], version: str = "1.2", **headers: str) -> Peer:
    p = Peer(broker.port, version, **headers)
    peers.append(p)
    return p


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_send_receive_with_receipt_each_version(broker, peers, version: str) -> None:
    p = peer(broker, peers, version)
    p.conn.subscribe("/queue/v", id="s", ack="auto")
    p.conn.send("/queue/v", "hello", receipt="r1", headers={"custom": "x"})
    p.receipt("r1")
    frame = p.get()
    assert frame.body == "hello" and frame.headers["custom"] == "x"
    assert frame.headers["destination"] == "/queue/v"


def test_queue_delivers_each_message_once_across_consumers(broker, peers) -> None:
    a, b, producer = peer(broker, peers), peer(broker, peers), peer(broker, peers)
    a.conn.subscribe("/queue/once", id="a", ack="auto", headers={"receipt": "ra"})
    b.conn.subscribe("/queue/once", id="b", ack="auto", headers={"receipt": "rb"})
    a.receipt("ra")
    b.receipt("rb")
    for i in range(100):
        producer.conn.send("/queue/once", str(i))
    got: list[str] = []
    deadline = time.monotonic() + WAIT
    while len(got) < 100 and time.monotonic() < deadline:
        for c in (a, b):
            try:
                got.append(c.listener.messages.get(timeout=0.05).body)
            except queue.Empty:
                pass
    assert sorted(got, key=int) == [str(i) for i in range(100)]
    assert a.listener.messages.qsize() == b.listener.messages.qsize() == 0


def test_topic_fan_out_and_durable_subscription(broker, peers) -> None:
    plain = peer(broker, peers)
    durable = peer(broker, peers, **{"client-id": "dur-1"})
    producer = peer(broker, peers)
    plain.conn.subscribe("/topic/news", id="p", ack="auto")
    durable.conn.subscribe("/topic/news", id="d", ack="auto",
                           headers={"activemq.subscriptionName": "sub", "receipt": "sub"})
    durable.receipt("sub")
    producer.conn.send("/topic/news", "first", receipt="r")
    producer.receipt("r")
    assert plain.bodies(1) == ["first"] and durable.bodies(1) == ["first"]
    durable.close()
    producer.conn.send("/topic/news", "while-away", receipt="r2")
    producer.receipt("r2")
    assert plain.bodies(1) == ["while-away"]
    back = peer(broker, peers, **{"client-id": "dur-1"})
    back.conn.subscribe("/topic/news", id="d", ack="auto", headers={"activemq.subscriptionName": "sub"})
    assert back.bodies(1) == ["while-away"]


def test_client_ack_nack_redelivery_and_dlq(broker, peers) -> None:
    producer, consumer = peer(broker, peers), peer(broker, peers)
    for i in range(3):
        producer.conn.send("/queue/acks", str(i))
    consumer.conn.subscribe("/queue/acks", id="s", ack="client")
    frames = [consumer.get() for _ in range(3)]
    consumer.conn.ack(frames[1].headers["ack"], receipt="a")  # cumulative: 0 and 1
    consumer.receipt("a")
    consumer.close()
    again = peer(broker, peers)
    again.conn.subscribe("/queue/acks", id="s", ack="client-individual")
    frame = again.get()
    assert frame.body == "2" and frame.headers["redelivered"] == "true"
    for _ in range(2):  # max_redeliveries=2: two redeliveries, the third NACK dead-letters
        again.conn.nack(frame.headers["ack"])
        frame = again.get()
        assert frame.body == "2" and frame.headers["redelivered"] == "true"
    again.conn.nack(frame.headers["ack"])
    assert again.nothing()
    again.conn.subscribe("/queue/ActiveMQ.DLQ", id="dlq", ack="auto")
    assert again.get().body == "2"


def test_stomp_1_1_acks_by_message_id(broker, peers) -> None:
    p = peer(broker, peers, "1.1")
    p.conn.send("/queue/a11", "x")
    p.conn.subscribe("/queue/a11", id="s", ack="client-individual")
    frame = p.get()
    p.conn.ack(frame.headers["message-id"], "s", receipt="ok")
    p.receipt("ok")
    assert broker.stats()["destinations"]["/queue/a11"]["dequeued"] == 1


def test_transactions(broker, peers) -> None:
    producer, consumer = peer(broker, peers), peer(broker, peers)
    consumer.conn.subscribe("/queue/tx", id="s", ack="auto")
    tx = producer.conn.begin()
    producer.conn.send("/queue/tx", "in-tx", transaction=tx)
    assert consumer.nothing()
    producer.conn.commit(tx)
    assert consumer.bodies(1) == ["in-tx"]
    tx = producer.conn.begin()
    producer.conn.send("/queue/tx", "aborted", transaction=tx)
    producer.conn.abort(tx)
    producer.conn.send("/queue/tx", "after", receipt="r")
    producer.receipt("r")
    assert consumer.bodies(1) == ["after"]


def test_selector_priority_expiry(broker, peers) -> None:
    producer = peer(broker, peers)
    producer.conn.send("/queue/sel", "low", headers={"priority": "1", "kind": "a"})
    producer.conn.send("/queue/sel", "expired", headers={"expires": str(int(time.time() * 1000) - 1000)})
    producer.conn.send("/queue/sel", "high", headers={"priority": "9", "kind": "a"})
    producer.conn.send("/queue/sel", "other", headers={"kind": "b"}, receipt="r")
    producer.receipt("r")
    consumer = peer(broker, peers)
    consumer.conn.subscribe("/queue/sel", id="s", ack="auto", headers={"selector": "kind IN ('a')"})
    assert consumer.bodies(2) == ["high", "low"]
    assert consumer.nothing()


def test_unacked_messages_return_when_consumer_disconnects(broker, peers) -> None:
    producer = peer(broker, peers)
    for i in range(5):
        producer.conn.send("/queue/ret", str(i))
    greedy = peer(broker, peers)
    greedy.conn.subscribe("/queue/ret", id="g", ack="client-individual")
    assert greedy.bodies(5) == [str(i) for i in range(5)]
    greedy.close()
    fresh = peer(broker, peers)
    fresh.conn.subscribe("/queue/ret", id="f", ack="auto")
    frames = [fresh.get() for _ in range(5)]
    assert [f.body for f in frames] == [str(i) for i in range(5)]
    assert all(f.headers.get("redelivered") == "true" for f in frames)


def test_disconnect_receipt_after_pending_work(broker, peers) -> None:
    p = peer(broker, peers)
    for i in range(50):
        p.conn.send("/queue/disc", str(i))
    p.conn.disconnect(receipt="bye")
    deadline = time.monotonic() + WAIT
    while broker.stats()["connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert broker.stats()["destinations"]["/queue/disc"]["depth"] == 50
