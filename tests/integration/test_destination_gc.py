"""Destination garbage collection against a real broker over loopback sockets: idle destinations go
away so that the destination limit is never a lockout; those holding messages (stored ones included,
across a restart), subscribers or a durable subscription stay."""

from __future__ import annotations

import time
from pathlib import Path

from config.model import Limits, StoreSettings
from stores.base import NoFence
from stores.registry import create_store
from tests.helpers.rawstomp import RawStomp
from tests.helpers.server import HOST, BrokerThread, running_broker
from tests.integration.test_connection_governance import eventually
from tests.integration.test_stomp_messaging import Peer
from tests.integration.test_stomp_transport import error_of

WAIT = 20.0  # generous: only a failing test waits this long, and CI machines are slow
SWEEP = 0.05


def names(broker: BrokerThread) -> set[str]:
    return set(broker.stats()["destinations"])


def send(raw: RawStomp, destination: str, receipt: str, **headers: str) -> str:
    raw.send_frame("SEND", {"destination": destination, "receipt": receipt, **headers}, b"one")
    return raw.read_frame(WAIT)


def refused_as_full(port: int, destination: str) -> bool:
    with RawStomp(HOST, port) as probe:
        assert probe.connect().startswith("CONNECTED")
        reply = send(probe, destination, "probe")
        if reply.startswith("RECEIPT"):
            return False
        assert error_of(reply) == "too many destinations", reply
        return True


def test_idle_destinations_are_collected_and_busy_ones_stay() -> None:
    idle = 1.5
    limits = Limits(max_destinations=6, destination_gc_idle=idle, destination_gc_interval=SWEEP)
    with running_broker(limits=limits) as broker:
        subscriber = Peer(broker.port)
        producer = Peer(broker.port)
        away = Peer(broker.port, **{"client-id": "gc"})
        try:
            producer.conn.send("/queue/held", "kept", receipt="r1")  # holds a message
            producer.receipt("r1")
            subscriber.conn.subscribe("/queue/subscribed", id="s", ack="auto", headers={"receipt": "r2"})
            subscriber.receipt("r2")
            away.conn.subscribe("/topic/news", id="d", ack="auto",
                                headers={"activemq.subscriptionName": "news", "receipt": "r3"})
            away.receipt("r3")
            away.close()  # the durable subscription stays, inactive, with its topic
            # Used and emptied: a queue whose last message was consumed, a topic nobody listens to.
            consumer = Peer(broker.port)
            try:
                producer.conn.send("/queue/consumed", "gone", receipt="r4")
                producer.receipt("r4")
                consumer.conn.subscribe("/queue/consumed", id="c", ack="auto")
                assert consumer.bodies(1) == ["gone"]
                consumer.conn.unsubscribe("c", headers={"receipt": "r5"})
                consumer.receipt("r5")
            finally:
                consumer.close()
            producer.conn.send("/topic/nobody", "lost", receipt="r6")
            producer.receipt("r6")
            emptied = time.monotonic()
            stay = {"/queue/held", "/queue/subscribed", "durable:gc:news", "/topic/news"}
            assert names(broker) == stay | {"/queue/consumed", "/topic/nobody"}
            assert refused_as_full(broker.port, "/queue/new")  # six of six: the limit holds

            assert eventually(lambda: names(broker) == stay, timeout=idle + WAIT)
            assert time.monotonic() - emptied >= idle  # not before the idle time
            assert not refused_as_full(broker.port, "/queue/new")  # room again
            assert broker.stats()["destinations"]["/queue/held"]["depth"] == 1
            assert names(broker) >= stay  # the busy ones outlive further sweeps
        finally:
            subscriber.close()
            producer.close()


def test_a_table_full_of_one_message_destinations_empties() -> None:
    limits = Limits(max_destinations=60, destination_gc_idle=0.3, destination_gc_interval=SWEEP)
    with running_broker(limits=limits) as broker, RawStomp(HOST, broker.port) as raw:
        assert raw.connect().startswith("CONNECTED")
        for i in range(60):  # one message each to topics nobody subscribes to
            assert send(raw, f"/topic/t{i}", f"r{i}").startswith("RECEIPT")
        assert refused_as_full(broker.port, "/topic/one-more")
        assert eventually(lambda: names(broker) == set(), timeout=WAIT)
        assert not refused_as_full(broker.port, "/topic/one-more")


def test_a_destination_in_use_is_not_collected() -> None:
    limits = Limits(destination_gc_idle=0.3, destination_gc_interval=SWEEP)
    with running_broker(limits=limits) as broker, RawStomp(HOST, broker.port) as raw:
        assert raw.connect().startswith("CONNECTED")
        until = time.monotonic() + 1.2  # four idle times, each message within a third of one
        n = 0
        while time.monotonic() < until:
            assert send(raw, "/topic/busy", f"r{n}").startswith("RECEIPT")
            assert "/topic/busy" in names(broker)
            n += 1
            time.sleep(0.1)
        assert broker.stats()["destinations"]["/topic/busy"]["enqueued"] == n  # never made anew
        assert eventually(lambda: "/topic/busy" not in names(broker), timeout=WAIT)


def test_stored_messages_keep_their_queue_across_a_restart(tmp_path: Path) -> None:
    limits = Limits(destination_gc_idle=0.2, destination_gc_interval=SWEEP)

    def start():  # type: ignore[no-untyped-def]
        store = create_store(tmp_path, StoreSettings(type="leveldb"), NoFence())
        return running_broker(limits=limits, store=store, data_dir=tmp_path)

    with start() as first, RawStomp(HOST, first.port) as raw:
        assert raw.connect().startswith("CONNECTED")
        assert send(raw, "/queue/stored", "r1", persistent="true").startswith("RECEIPT")
    with start() as second:
        time.sleep(0.2 + 6 * SWEEP)  # past the idle time, several sweeps
        assert second.stats()["destinations"]["/queue/stored"]["depth"] == 1  # recovered and kept
        consumer = Peer(second.port)
        try:
            consumer.conn.subscribe("/queue/stored", id="s", ack="client-individual")
            message = consumer.get()
            time.sleep(0.2 + 6 * SWEEP)
            assert "/queue/stored" in names(second)  # delivered, not acked: in flight, with a consumer
            consumer.conn.ack(message.headers["ack"], receipt="a1")
            consumer.receipt("a1")
            consumer.conn.unsubscribe("s", headers={"receipt": "u1"})
            consumer.receipt("u1")
        finally:
            consumer.close()
        assert eventually(lambda: "/queue/stored" not in names(second), timeout=WAIT)
